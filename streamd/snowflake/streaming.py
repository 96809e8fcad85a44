"""Snowpipe Streaming REST client: open, append, bulk status and drop on named channels (§2.5–§2.9).

One call sends one request (plus at most one resend after a 401 or 403) and ends in one result or one
typed exception from `codes.py`. Retries, backoff, reopen and replay belong to the sink.
"""

from __future__ import annotations

import functools
import gzip
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson
import zstandard

from streamd.errors import PayloadTooLarge, ReopenChannel, RetryableError
from streamd.rows import ChannelKey
from streamd.snowflake.auth import StreamingAuth
from streamd.snowflake.codes import error_for, map_transport_errors

Compression = Literal["zstd", "gzip", "none"]

MAX_APPEND_WIRE_BYTES = 4_000_000
"""Largest append body as sent (after compression). The docs say "4 MB" (§2.2); the smaller,
decimal reading is used so a body this client sends is never over the limit under either reading."""

_ZSTD_LEVEL = 1  # speed over ratio: NDJSON compresses well even at level 1 (wire note §10)
_GZIP_LEVEL = 1


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel's server-side state, as Open Channel and Bulk Channel Status report it (§2.5)."""

    channel_name: str
    status_code: str
    last_committed_offset_token: str | None
    rows_inserted: int
    rows_parsed: int
    rows_error_count: int
    last_error_offset_upper_bound: str | None
    last_error_message: str | None
    last_error_timestamp: object
    """As sent: epoch ms or a timestamp string (the docs say both, §2.5)."""
    created_on_ms: int | None
    avg_processing_latency_ms: float | None

    @property
    def healthy(self) -> bool:
        """True when the server reports `SUCCESS`; anything else, even "ACTIVE", is not."""
        return self.status_code == "SUCCESS"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, channel_name: str) -> ChannelStatus:
        """Parse a `channel_status` object, tolerant of every field spelling seen (§2.8)."""
        committed = data.get("last_committed_offset_token")
        upper = data.get("last_error_offset_upper_bound")
        message = data.get("last_error_message")
        return cls(
            channel_name=str(data.get("channel_name") or channel_name),
            status_code=str(data.get("channel_status_code") or data.get("status_code") or ""),
            last_committed_offset_token=None if committed is None else str(committed),
            rows_inserted=_int(data.get("rows_inserted")),
            rows_parsed=_int(data.get("rows_parsed")),
            rows_error_count=_int(
                _first(data, "rows_error_count", "rows_errors", "row_error_count")
            ),
            last_error_offset_upper_bound=None if upper is None else str(upper),
            last_error_message=None if message is None else str(message),
            last_error_timestamp=_first(data, "last_error_timestamp", "last_error_timestamp_ms"),
            created_on_ms=_opt_int(data.get("created_on_ms")),
            avg_processing_latency_ms=_opt_float(
                _first(data, "snowflake_avg_processing_latency_ms", "avg_processing_latency_ms")
            ),
        )


@dataclass(frozen=True, slots=True)
class OpenResult:
    """What Open Channel returns: the first continuation token and the channel's status."""

    continuation_token: str
    status: ChannelStatus


class StreamingClient:
    """Calls the ingest host with the scoped token; knows nothing of sources, batches or retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        auth: StreamingAuth,
        *,
        compression: Compression = "zstd",
        user_agent: str,
    ) -> None:
        self._http = http
        self._auth = auth
        self._compression = compression
        self._zstd = zstandard.ZstdCompressor(level=_ZSTD_LEVEL) if compression == "zstd" else None
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        rows_headers = {**self._headers, "Content-Type": "application/x-ndjson"}
        if compression != "none":
            rows_headers["Content-Encoding"] = compression
        self._rows_headers = rows_headers

    async def open_channel(
        self,
        key: ChannelKey,
        *,
        offset_token: str | None = None,
        fail_on_uncommitted_rows: bool = False,
    ) -> OpenResult:
        """Open (or reopen) a channel; returns its continuation token and last committed offset.

        Reopening bumps the server's client sequencer, fences earlier tokens and discards
        uncommitted data (§2.5). Leave `offset_token` unset on a reopen: it would overwrite the
        committed token the replay starts from (§2.11, Snowflake's own recovery sample).
        """
        options: dict[str, Any] = {}
        if offset_token is not None:
            options["offset_token"] = offset_token
        if fail_on_uncommitted_rows:
            options["fail_on_uncommitted_rows"] = True
        response = await self._send(
            "PUT",
            _channel_path(key),
            what=f"open channel {key}",
            ambiguous=False,
            content=orjson.dumps(options),
            headers=self._json_headers,
        )
        data = _json_object(response)
        token = data.get("next_continuation_token")
        status = data.get("channel_status")
        if not isinstance(token, str) or not token or not isinstance(status, dict):
            # Without the status there is no committed offset to replay from; opening again
            # is safe and is what the sink does with a RetryableError.
            raise RetryableError(
                f"open channel {key}: the answer lacks next_continuation_token or channel_status"
            )
        return OpenResult(token, ChannelStatus.from_json(status, channel_name=key.channel))

    async def append_rows(
        self,
        key: ChannelKey,
        continuation_token: str,
        body: bytes,
        *,
        start_offset_token: str,
        end_offset_token: str,
    ) -> str:
        """Append one NDJSON batch; returns the next continuation token.

        A 200 means received, not committed (§2.6). Any failure whose outcome is unknown raises
        `ReopenChannel`: the same token must never be resent after it (§2.11 step 5).
        """
        what = f"append to {key}"
        payload = self._compress(body)
        if len(payload) > MAX_APPEND_WIRE_BYTES:
            raise PayloadTooLarge(
                f"{what}: {len(payload)} bytes on the wire exceed {MAX_APPEND_WIRE_BYTES} — "
                "send fewer rows per request"
            )
        query = (
            f"?continuationToken={quote(continuation_token, safe='')}"
            f"&startOffsetToken={quote(start_offset_token, safe='')}"
            f"&endOffsetToken={quote(end_offset_token, safe='')}"
            f"&requestId={uuid.uuid4()}"
        )
        response = await self._send(
            "POST",
            _rows_path(key) + query,
            what=what,
            ambiguous=True,
            content=payload,
            headers=self._rows_headers,
        )
        try:
            data = _json_object(response)
        except RetryableError as exc:
            raise ReopenChannel(f"{what}: {exc}") from None
        token = data.get("next_continuation_token")
        if not isinstance(token, str) or not token:
            # The SDK invalidates the channel on this too (wire note §7).
            raise ReopenChannel(f"{what}: HTTP 200 without next_continuation_token; reopen")
        return token

    async def bulk_channel_status(
        self, database: str, schema: str, pipe: str, channel_names: Sequence[str]
    ) -> dict[str, ChannelStatus]:
        """Status of several channels of one pipe, keyed by the names asked for.

        A channel the server does not know is absent from the result (§2.8). Response keys are
        matched case-insensitively, since clients disagree on their case (§2.8 [OBS]).
        """
        if not channel_names:
            return {}
        path = (
            f"/v2/streaming/databases/{_seg(database)}/schemas/{_seg(schema)}"
            f"/pipes/{_seg(pipe)}:bulk-channel-status"
        )
        response = await self._send(
            "POST",
            path,
            what=f"channel status of {database}.{schema}.{pipe}",
            ambiguous=False,
            content=orjson.dumps({"channel_names": list(channel_names)}),
            headers=self._json_headers,
        )
        statuses = _json_object(response).get("channel_statuses")
        if not isinstance(statuses, dict):
            return {}
        folded = {str(k).casefold(): v for k, v in statuses.items()}
        result: dict[str, ChannelStatus] = {}
        for name in channel_names:
            raw = statuses.get(name)
            if raw is None:
                raw = folded.get(name.casefold())
            if isinstance(raw, dict):
                result[name] = ChannelStatus.from_json(raw, channel_name=name)
        return result

    async def drop_channel(self, key: ChannelKey) -> None:
        """Drop a channel and its offset token (§2.9). Success is the status code alone."""
        await self._send("DELETE", _channel_path(key), what=f"drop channel {key}", ambiguous=False)

    def _compress(self, body: bytes) -> bytes:
        if self._zstd is not None:
            return self._zstd.compress(body)
        if self._compression == "gzip":
            return gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
        return body

    async def _send(
        self,
        method: str,
        path: str,
        *,
        what: str,
        ambiguous: bool,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request with the scoped token; one resend after a 401 or 403 with a fresh token.

        Both refuse a request before it is processed (§2.4), so the resend is safe; Snowflake's
        own SDK refreshes its token on either. A second refusal is an AuthError (fatal).
        """
        url = await self._auth.ingest_url() + path
        base = headers if headers is not None else self._headers
        for attempt in (0, 1):
            token = await self._auth.scoped_token()
            with map_transport_errors(ambiguous=ambiguous, what=what):
                response = await self._http.request(
                    method,
                    url,
                    content=content,
                    headers={
                        **base,
                        "Authorization": f"Bearer {token}",
                        "X-Snowflake-Authorization-Token-Type": "OAUTH",
                    },
                )
            _cut_loose(response)
            if response.status_code == 200:
                return response
            if response.status_code in (401, 403) and attempt == 0:
                # Refused before it was processed: resending the same continuation token is safe.
                self._auth.invalidate_scoped_token(token)
                continue
            if response.status_code == 410:
                # The pipe failed over (§2.10): the ingest host may have moved with it.
                self._auth.reset()
            break
        raise error_for(
            response.status_code,
            response.content,
            response.headers,
            what=what,
            now=self._auth.clock.wall(),
        )

    def __repr__(self) -> str:
        return f"StreamingClient(auth={self._auth!r}, compression={self._compression!r})"


_CONSUMED = httpx.ByteStream(b"")


def _cut_loose(response: httpx.Response) -> None:
    """Break the reference cycle httpx leaves between a read response and its stream.

    `AsyncClient.send` wraps the stream in a `BoundAsyncStream` that points back at the response,
    so every response, its request and the request's body (an append's ~100 KB compressed batch)
    outlive our last reference until the cyclic collector runs. The daemon paces that collector
    (`streamd.daemon.memory`), and in bench/stall.py those bodies held the appending daemon's RSS
    10-25 MB above a daemon whose appends were stopped. The body was read in full (no streaming
    request), so the stream is replaced by an empty one and reference counting frees the rest.
    """
    response.stream = _CONSUMED


def _seg(name: str) -> str:
    # Every path segment is percent-encoded and keeps its case, as the SDK does (wire note §3).
    return quote(name, safe="")


@functools.lru_cache(maxsize=4096)
def _channel_path(key: ChannelKey) -> str:
    return (
        f"/v2/streaming/databases/{_seg(key.database)}/schemas/{_seg(key.schema)}"
        f"/pipes/{_seg(key.pipe)}/channels/{_seg(key.channel)}"
    )


@functools.lru_cache(maxsize=4096)
def _rows_path(key: ChannelKey) -> str:
    # The data path has an extra `/data` segment compared with open/drop (§2.6).
    return (
        f"/v2/streaming/data/databases/{_seg(key.database)}/schemas/{_seg(key.schema)}"
        f"/pipes/{_seg(key.pipe)}/channels/{_seg(key.channel)}/rows"
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = orjson.loads(response.content) if response.content else {}
    except orjson.JSONDecodeError:
        raise RetryableError(f"HTTP {response.status_code} with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise RetryableError(f"HTTP {response.status_code} with a body that is not a JSON object")
    return data


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _int(value: object) -> int:
    number = _opt_int(value)
    return 0 if number is None else number


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(float(str(value)))
    except ValueError:
        return None


def _opt_float(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(str(value)) if not isinstance(value, int | float) else float(value)
    except ValueError:
        return None
