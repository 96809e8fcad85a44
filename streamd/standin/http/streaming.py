"""The Snowpipe Streaming REST endpoints (reference §2.3–§2.9), paths exactly as documented.

Paths are split on the **raw** path before percent-decoding: the SDK sends `/` inside a channel name
as `%2F` (official-sdk-wire §3), which a decoded path would turn into an extra segment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from streamd.standin.http.auth import Authenticator, Unauthorized
from streamd.standin.http.responses import (
    attempt_of,
    continuation_token,
    error_response,
    json_body,
    json_response,
    read_limited,
)
from streamd.standin.storage.database import ChannelRow
from streamd.standin.streaming.channels import StandinState
from streamd.standin.streaming.errors import StreamingError
from streamd.standin.streaming.ids import ChannelId
from streamd.standin.streaming.timing import TimingLog

if TYPE_CHECKING:
    from streamd.standin.http.sdk import SdkApi


@dataclass(frozen=True, slots=True)
class StreamingApi:
    """Handlers bound to the live state, the authenticator and the advertised ingest host."""

    state: StandinState
    auth: Authenticator
    hostname: str
    sdk: SdkApi | None = None
    """The official SDK's undocumented calls under /v2/streaming (`:pipe-info`, `/filebuffer`)."""
    timing: TimingLog | None = None
    """Per-batch server times for diagnostics (`timing.py`); None unless asked for."""

    def routes(self) -> list[Route]:
        """Starlette routes for the control-host and ingest-host streaming calls."""
        return [
            Route("/oauth/token", self.oauth_token, methods=["POST"]),
            Route(
                "/v2/streaming/{rest:path}",
                self.dispatch,
                methods=["GET", "PUT", "POST", "DELETE"],
            ),
        ]

    async def oauth_token(self, request: Request) -> Response:
        """Exchange Scoped Token (§2.4): form body in, plain-text token out (what clients parse)."""
        try:
            subject = self.auth.check_control(request.headers.get("authorization"))
        except Unauthorized as err:
            return error_response(401, "390303", f"Invalid JWT token: {err}")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        grant = form.get("grant_type", [""])[0]
        if grant != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return error_response(
                400, "ERR_INVALID_GRANT_TYPE", f"unsupported grant_type {grant!r}"
            )
        scope = form.get("scope", [""])[0]
        # Plain text, not {"token": …}: the SDK rejects JSON here (official-sdk-wire §3, row 2).
        return PlainTextResponse(self.auth.issue_scoped_token(subject, scope))

    async def dispatch(self, request: Request) -> Response:
        """Route one /v2/streaming call by method and raw path segments."""
        received = time.monotonic()  # for the timing log: before auth, routing and body
        raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        parts = raw_path.removeprefix("/v2/streaming/").split("/")
        try:
            return await self._dispatch(request, parts, received)
        except Unauthorized as err:
            return error_response(401, "390303", f"Authentication failed: {err}")
        except StreamingError as err:
            return error_response(err.status, err.code, err.message, err.headers)

    async def _dispatch(self, request: Request, parts: list[str], received: float) -> Response:
        method = request.method
        if method == "GET" and parts == ["hostname"]:
            self.auth.check_control(request.headers.get("authorization"))
            # Plain text, bare host, no port: the SDK appends the control URL's port (wire §3).
            return PlainTextResponse(self.hostname)
        names = parse_names(parts)
        if names is not None:
            kind, db, schema, pipe, channel = names
            if kind == "channel" and method in ("PUT", "DELETE"):
                self.auth.check_ingest(request.headers.get("authorization"))
                cid = ChannelId(db.upper(), schema.upper(), pipe.upper(), channel.upper())
                body = await json_body(request)
                fail = bool(body.get("fail_on_uncommitted_rows", False))
                if method == "PUT":
                    offset = body.get("offset_token")
                    token, row = await self.state.open_channel(
                        cid, None if offset is None else str(offset), fail
                    )
                    status = _status(cid, row, self.state.status_code(cid))
                    return json_response(
                        {"next_continuation_token": token, "channel_status": status}
                    )
                await self.state.drop_channel(cid, fail)
                return json_response({})  # the SDK needs a JSON object (wire §3, row 8)
            if kind == "status" and method == "POST":
                self.auth.check_ingest(request.headers.get("authorization"))
                response = await self._bulk_status(request, db, schema, pipe)
                if self.timing is not None:
                    pipe_name = f"{db}.{schema}.{pipe}".upper()
                    response.background = BackgroundTask(
                        self.timing.status_responded, pipe_name, received
                    )
                return response
            if kind == "rows" and method == "POST":
                self.auth.check_ingest(request.headers.get("authorization"))
                cid = ChannelId(db.upper(), schema.upper(), pipe.upper(), channel.upper())
                return await self._append(request, cid, received)
            if kind == "pipe-info" and method == "POST" and self.sdk is not None:
                return await self.sdk.pipe_info(request, db, schema, pipe)
            if kind == "filebuffer" and method == "POST" and self.sdk is not None:
                cid = ChannelId(db.upper(), schema.upper(), pipe.upper(), channel.upper())
                return await self.sdk.filebuffer(request, cid)
        return error_response(
            404, "ERR_NOT_FOUND", f"no such endpoint: {method} {request.url.path}"
        )

    async def _append(self, request: Request, cid: ChannelId, received: float) -> Response:
        query = request.query_params
        token = continuation_token(request)
        body = await read_limited(request)
        # endOffsetToken is what becomes last_committed_offset_token; the older single
        # `offsetToken` (§2.6 [DOC-OLD]) is accepted in its place.
        end = query.get("endOffsetToken") or query.get("offsetToken")
        start = query.get("startOffsetToken") or query.get("offsetToken")
        log = self.timing
        timing = None if log is None else log.begin(".".join(cid), start, end, received)
        # The SDK's x-snowflake-uncompressed-content-length and -min-append-timestamp-ms headers
        # are undocumented hints (wire §5); nothing depends on them, so they are not checked.
        next_token = await self.state.append(
            cid,
            token,
            body,
            request.headers.get("content-encoding"),
            start,
            end,
            attempt_of(request),
            timing,
        )
        response = json_response({"next_continuation_token": next_token})
        if log is not None and timing is not None:
            # Runs once the response is sent: the record's `responded`.
            response.background = BackgroundTask(log.responded, timing)
        return response

    async def _bulk_status(self, request: Request, db: str, schema: str, pipe: str) -> Response:
        body = await json_body(request)
        names = body.get("channel_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise StreamingError(
                400, "ERR_INVALID_REQUEST", "channel_names must be a list of strings"
            )
        rows = await self.state.channel_statuses(db, schema, pipe, names)
        cid = ChannelId(db.upper(), schema.upper(), pipe.upper(), "")
        statuses = {}
        for name, row in rows.items():
            channel = cid._replace(channel=row.channel_name)
            statuses[name] = _status(channel, row, self.state.status_code(channel))
        return json_response({"channel_statuses": statuses})


_PIPE_ACTIONS = {"bulk-channel-status": "status", "pipe-info": "pipe-info"}
_DATA_ACTIONS = {"rows": "rows", "filebuffer": "filebuffer"}


def parse_names(parts: list[str]) -> tuple[str, str, str, str, str] | None:
    """(kind, db, schema, pipe, channel) of a channel, status, pipe-info, rows or filebuffer
    path, decoded."""
    if len(parts) == 8 and parts[0::2] == ["databases", "schemas", "pipes", "channels"]:
        return ("channel", *(unquote(p) for p in parts[1::2]))  # type: ignore[return-value]
    if len(parts) == 6 and parts[0::2] == ["databases", "schemas", "pipes"]:
        pipe, sep, action = parts[5].rpartition(":")
        if sep and action in _PIPE_ACTIONS:
            return (_PIPE_ACTIONS[action], unquote(parts[1]), unquote(parts[3]), unquote(pipe), "")
        return None
    if (
        len(parts) == 10
        and parts[0] == "data"
        and parts[1:9:2] == ["databases", "schemas", "pipes", "channels"]
        and parts[9] in _DATA_ACTIONS
    ):
        return (_DATA_ACTIONS[parts[9]], *(unquote(p) for p in parts[2:9:2]))  # type: ignore[return-value]
    return None


def _status(cid: ChannelId, row: ChannelRow, code: str) -> dict[str, Any]:
    """A channel status object carrying every documented spelling (§2.5, §2.8, wire §4.2)."""
    return {
        "database_name": cid.db,
        "schema_name": cid.schema,
        "pipe_name": cid.pipe,
        "channel_name": row.channel_name,
        "channel_status_code": code,
        "last_committed_offset_token": row.committed_offset_token,
        "created_on_ms": row.created_on_ms,
        "rows_inserted": row.rows_inserted,
        "rows_parsed": row.rows_parsed,
        "rows_error_count": row.rows_error_count,
        "rows_errors": row.rows_error_count,
        "last_error_offset_upper_bound": row.last_error_offset_upper_bound,
        "last_error_message": row.last_error_message,
        # Documented both as a timestamp and as "Long, ms"; epoch ms under both names.
        "last_error_timestamp": row.last_error_timestamp_ms,
        "last_error_timestamp_ms": row.last_error_timestamp_ms,
        "snowflake_avg_processing_latency_ms": row.avg_latency_ms,
    }
