"""The classic Snowpipe REST endpoints (reference §3.1–§3.3): insertFiles, insertReport, loadHistoryScan.

Key-pair JWT only, as Snowflake. Error bodies carry `code`, `success`, `message` and `data`, the
shape `snowflake-ingest`'s IngestResponseError parses (§3.5).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.standin.http.auth import Authenticator, Unauthorized
from streamd.standin.http.responses import json_response
from streamd.standin.snowpipe.history import history_sync, missed_sync
from streamd.standin.snowpipe.loader import (
    MAX_FILES_PER_REQUEST,
    LoaderBusy,
    PipeNotFound,
    Snowpipe,
    check_path,
)
from streamd.standin.snowpipe.pipes import PipeSpec, iso_ms
from streamd.standin.storage.duck import now_ms

REPORT_WINDOW_MS = 10 * 60 * 1000
"""insertReport keeps at most 10 minutes of events (§3.2)."""
MAX_EVENTS = 10_000


def _error(status: int, code: str, message: str) -> Response:
    return json_response({"code": code, "success": False, "message": message, "data": None}, status)


@dataclass(frozen=True, slots=True)
class SnowpipeApi:
    """Handlers bound to the stand-in's pipes and authenticator."""

    pipes: Snowpipe
    auth: Authenticator

    def routes(self) -> list[Route]:
        """Starlette routes of the classic Snowpipe REST API."""
        base = "/v1/data/pipes/{pipe}"
        return [
            Route(f"{base}/insertFiles", self.insert_files, methods=["POST"]),
            Route(f"{base}/insertReport", self.insert_report, methods=["GET"]),
            Route(f"{base}/loadHistoryScan", self.load_history_scan, methods=["GET"]),
        ]

    async def _pipe(self, request: Request) -> PipeSpec | Response:
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except Unauthorized as err:
            return _error(401, "390144", f"JWT token is invalid: {err}")
        try:
            return await self.pipes.get(request.path_params["pipe"])
        except PipeNotFound as err:
            return _error(404, "390404", str(err))

    async def insert_files(self, request: Request) -> Response:
        """POST insertFiles: queue up to 5,000 staged files; 200 means queued, not loaded."""
        spec = await self._pipe(request)
        if isinstance(spec, Response):
            return spec
        body = await request.body()
        try:
            files = _files(body, request.headers.get("content-type", ""))
        except (ValueError, TypeError) as err:
            return _error(400, "390400", str(err))
        if len(files) > MAX_FILES_PER_REQUEST:
            return _error(
                400,
                "390400",
                f"{len(files)} files in one request; at most {MAX_FILES_PER_REQUEST} are allowed",
            )
        try:
            self.pipes.submit(spec, files)
        except LoaderBusy as err:
            return _error(429, "390429", str(err))
        request_id = request.query_params.get("requestId") or str(uuid.uuid4())
        # Both spellings of success: the reference page says status, the SDK's tests responseCode.
        return json_response(
            {"requestId": request_id, "responseCode": "SUCCESS", "status": "success"}
        )

    async def insert_report(self, request: Request) -> Response:
        """GET insertReport: load events of the last 10 minutes after `beginMark` (§3.2)."""
        spec = await self._pipe(request)
        if isinstance(spec, Response):
            return spec
        params = request.query_params
        window = REPORT_WINDOW_MS
        recent = params.get("recentSeconds")
        if recent is not None and recent.isdigit():
            # Undocumented (the SDK sends it): narrows the window, never widens it past 10 min.
            window = min(window, int(recent) * 1000)
        after = _mark(params.get("beginMark"))
        since = now_ms() - window
        events = await self.pipes.storage.read(
            functools.partial(
                history_sync, spec=spec, after_event=after, since_ms=since, limit=MAX_EVENTS
            )
        )
        missed = await self.pipes.storage.read(
            functools.partial(missed_sync, spec=spec, after_event=after, since_ms=since)
        )
        last = events[-1][0] if events else after
        return json_response(
            {
                "pipe": spec.qualified,
                # Incomplete when events after beginMark aged out of the 10-minute window, or
                # when a full page (10,000) leaves more to read.
                "completeResult": not missed and len(events) < MAX_EVENTS,
                "nextBeginMark": f"1_{last}",
                "files": [e for _, e in events],
                "statistics": {"activeFilesCount": len(self.pipes.pending(spec))},
            }
        )

    async def load_history_scan(self, request: Request) -> Response:
        """GET loadHistoryScan: load events in [startTimeInclusive, endTimeExclusive) (§3.3)."""
        spec = await self._pipe(request)
        if isinstance(spec, Response):
            return spec
        params = request.query_params
        try:
            start = _time_ms(params.get("startTimeInclusive"), "startTimeInclusive")
            end_text = params.get("endTimeExclusive")
            end = _time_ms(end_text, "endTimeExclusive") if end_text else now_ms()
        except ValueError as err:
            return _error(400, "390400", str(err))
        events = await self.pipes.storage.read(
            functools.partial(
                history_sync, spec=spec, since_ms=start, until_ms=end, limit=MAX_EVENTS
            )
        )
        files = [e for _, e in events]
        complete = len(events) < MAX_EVENTS
        return json_response(
            {
                "pipe": spec.qualified,
                "completeResult": complete,
                "startTimeInclusive": iso_ms(start),
                "endTimeExclusive": iso_ms(end),
                "rangeStartTime": files[0]["lastInsertTime"] if files else iso_ms(start),
                # When incomplete, the caller continues from rangeEndTime (§3.3).
                "rangeEndTime": files[-1]["lastInsertTime"] if files else iso_ms(end),
                "files": files,
            }
        )


def _files(body: bytes, content_type: str) -> list[tuple[str, int | None]]:
    if content_type.startswith("text/plain"):
        lines = [line.strip() for line in body.decode("utf-8", "replace").splitlines()]
        return [(check_path(line), None) for line in lines if line]
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"body is not JSON: {err}") from None
    raw = payload.get("files") if isinstance(payload, dict) else None
    if not isinstance(raw, list):
        raise TypeError('body must be {"files": [{"path": ..., "size": ...}, ...]}')
    out: list[tuple[str, int | None]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise TypeError("every entry of files must be an object with a path")
        size = item.get("size")
        out.append((check_path(item.get("path")), size if isinstance(size, int) else None))
    return out


def _mark(value: str | None) -> int:
    """Our marks are `1_<event id>`; anything else is treated as no mark (it is only a hint)."""
    if not value:
        return 0
    tail = value.rpartition("_")[2]
    return int(tail) if tail.isdigit() else 0


def _time_ms(value: str | None, name: str) -> int:
    if not value:
        raise ValueError(f"{name} is required (ISO-8601, e.g. 2026-11-23T10:00:00Z)")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
