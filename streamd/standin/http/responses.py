"""HTTP helpers every route module shares: JSON answers, the documented error body, body parsing.

Request bodies that cannot be read raise `StreamingError`, which the streaming and SDK routes
render as the documented `{"code", "message"}` body (§2.10).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from streamd.standin.streaming.errors import StreamingError
from streamd.standin.streaming.replay import Attempt

MAX_APPEND_BYTES = 4 * 1024 * 1024
"""4 MB per append as sent on the wire, i.e. before decompression (§2.2, §2.13)."""


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialised with orjson."""
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """The documented error body `{"code", "message"}` (§2.10)."""
    return json_response({"code": code, "message": message}, status, headers)


def attempt_of(request: Request) -> Attempt:
    """`requestId`/`retryCount` of a request (the SDK sends both on every call, wire §3)."""
    retry = request.query_params.get("retryCount", "0")
    return Attempt(
        request_id=request.query_params.get("requestId") or None,
        retry_count=int(retry) if retry.isdigit() else 0,
    )


def continuation_token(request: Request) -> str:
    """The `continuationToken` query parameter; 400 ERR_MISSING_CONTINUATION_TOKEN without it."""
    token = request.query_params.get("continuationToken")
    if not token:
        raise StreamingError(400, "ERR_MISSING_CONTINUATION_TOKEN", "continuationToken is required")
    return token


def parse_json(raw: bytes) -> Any:
    """`raw` decoded as JSON; 400 ERR_INVALID_REQUEST when it is not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise StreamingError(400, "ERR_INVALID_REQUEST", f"body is not JSON: {err}") from err


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (`{}` when empty); 400 ERR_INVALID_REQUEST otherwise."""
    raw = await request.body()
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise StreamingError(400, "ERR_INVALID_REQUEST", "body must be a JSON object")
    return body


async def read_limited(request: Request) -> bytes:
    """The request body, refused with 413 beyond 4 MB as sent on the wire."""
    # The status and code for an oversize body are not documented (§2.2); 413 with
    # ERR_PAYLOAD_TOO_LARGE is the stand-in's choice. Checked before decompression (on the wire).
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_APPEND_BYTES:
        raise _too_large(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_APPEND_BYTES:
            raise _too_large(size)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int) -> StreamingError:
    return StreamingError(
        413,
        "ERR_PAYLOAD_TOO_LARGE",
        f"request body of {size} bytes exceeds the 4 MB (4194304 bytes) limit on the wire",
    )
