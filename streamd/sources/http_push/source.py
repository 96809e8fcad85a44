"""HTTP push source: applications POST rows, answered only once the rows are durable in the spool.

`POST /v1/tables/{table}/rows` with `Authorization: Bearer <token>`, a body of NDJSON
(`application/x-ndjson`) or a JSON array of objects (`application/json`), optionally
`Content-Encoding: gzip` or `zstd`. Optional `X-Client-Id` shards rows by client (rows of one
request always share one lane, so the offsets reported are on one channel).

Answers (every body after parsing has the same shape: `accepted`, `first_offset`, `last_offset`,
`errors`, `refused`, `pending`, `not_sent`; lines are 1-based, array elements count as lines):

- 200: every row is durable in the spool; offsets are the spool sequences (offset tokens).
- 400: some lines are bad (invalid JSON, not an object, too large). The valid lines of the same
  request ARE accepted (see `accepted`) and the bad ones are written to the dead-letter queue, so
  a client must not resend the whole request: fix and resend only the lines in `errors`.
  413 instead of 400 when every bad line was only too large.
- 401 missing or malformed bearer token, 403 unknown token, 404 unknown table, 415 media type or
  encoding, 413 body over `max_body_bytes` (compressed or decompressed) or over
  `max_rows_per_request` rows; nothing of such a request is accepted.
- 429 + Retry-After: nothing accepted, nothing dead-lettered (every row in `not_sent`, `errors`
  empty, `error` says why); retry the same request. Rule: a
  request is admitted only if its rows fit the source's `max_inflight_rows` budget (rows handed
  to the pipeline and not yet durable) AND the source stream takes its first row within
  `admission_wait_ms` (default 100 ms).
  A full pipeline (spool full → lanes full → stream full) therefore answers 429 at once instead
  of holding connections. Once admitted, the rest of the rows are sent in order; the stream is
  drained continuously, so any wait there is short and bounded by `ack_timeout_s`.
- 507 + Retry-After: the lines in `refused` were not stored (spool full with when_full =
  "drop_newest", or a row the pipeline dead-lettered); the others were; resend only `refused`.
- 503 + Retry-After: `ack_timeout_s` passed (or the daemon is stopping) before every row was
  durable. `not_sent` lines never reached the pipeline: resend them. `pending` lines did and may
  still become durable: resend them only if the table deduplicates on an event id.

Nothing is reported accepted before its ack; a row acknowledged to a client is in the spool.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.to_thread
import orjson
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.config.base import FrozenModel
from streamd.config.secrets import resolve_secret
from streamd.http_server import bind_tcp, serve_asgi
from streamd.logs import get_logger
from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.http_push.body import (
    BodyError,
    LineError,
    Parsed,
    answer,
    body_format,
    decode_body,
    not_admitted,
)
from streamd.sources.http_push.body import parse_body as _parse_body
from streamd.sources.rejects import DeadLetter, raw_row

MiB = 1024 * 1024
_QUALIFIED = re.compile(
    r"[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*"
)
_URL_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_CLIENT_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


class HttpPushSourceConfig(FrozenModel):
    """An HTTP endpoint where applications POST rows (NDJSON or a JSON array, gzip or zstd)."""

    model_config = ConfigDict(populate_by_name=True)

    kind: Literal["http_push"] = "http_push"
    """Selects this source type."""
    name: str = Field(default="http_push", min_length=1)
    """Unique name of this source (appears in logs and metrics; the default shard key)."""
    host: str = "127.0.0.1"
    """Address to listen on; 0.0.0.0 exposes it beyond this host (put TLS in front of it)."""
    port: int = Field(default=8080, ge=0, le=65535)
    """TCP port; 0 lets the OS pick a free one."""
    tokens: list[SecretStr] = Field(min_length=1)
    """Accepted bearer tokens, each `env:NAME`, `file:/path` or the literal token."""
    table_map: dict[str, str] = Field(alias="tables", min_length=1)
    """URL table name → fully qualified target table, e.g. { orders = "SHOP.RAW.ORDERS" }."""
    max_body_bytes: int = Field(default=8 * MiB, ge=1024)
    """Largest request body, compressed and again decompressed; larger answers 413."""
    max_row_bytes: int = Field(default=1 * MiB, ge=16)
    """Largest single row (one NDJSON line / one array element); larger rows are bad lines."""
    max_rows_per_request: int = Field(default=10_000, ge=1)
    """Most rows one request may carry; more answers 413."""
    max_inflight_rows: int = Field(default=20_000, ge=1)
    """Rows handed to the pipeline and not yet durable, over all requests; past it, 429."""
    admission_wait_ms: float = Field(default=100, ge=0)
    """How long a request may wait for room for its first row before 429 (rides out a momentary
    burst; a pipeline that stays full answers 429 after this, not after ack_timeout_s)."""
    ack_timeout_s: float = Field(default=10, gt=0)
    """How long a request may wait for its rows to become durable before answering 503."""
    retry_after_s: int = Field(default=1, ge=1)
    """Seconds sent in Retry-After with 429, 503 and 507."""

    @field_validator("tokens", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [
                resolve_secret(v, key=f"sources.tokens[{i}]") if isinstance(v, str) else v
                for i, v in enumerate(value)
            ]
        return value

    @field_validator("tokens")
    @classmethod
    def _non_empty(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not t.get_secret_value() for t in value):
            raise ValueError("a bearer token is empty; check the env var or file it comes from")
        return value

    @field_validator("table_map")
    @classmethod
    def _table_names(cls, value: dict[str, str]) -> dict[str, str]:
        for url_name, target in value.items():
            if not _URL_NAME.fullmatch(url_name):
                raise ValueError(f"table name {url_name!r} must be 1-128 of A-Z a-z 0-9 _ . -")
            if not _QUALIFIED.fullmatch(target):
                raise ValueError(f"target {target!r} must be fully qualified as DB.SCHEMA.TABLE")
        return value

    @model_validator(mode="after")
    def _limits(self) -> HttpPushSourceConfig:
        if self.max_rows_per_request > self.max_inflight_rows:
            raise ValueError("max_rows_per_request must not exceed max_inflight_rows")
        if self.max_row_bytes > self.max_body_bytes:
            raise ValueError("max_row_bytes must not exceed max_body_bytes")
        return self

    def tables(self) -> list[str]:
        """The fully qualified tables (`DB.SCHEMA.TABLE`) this source writes."""
        return sorted(set(self.table_map.values()))


@dataclass(slots=True)
class _Job:
    """One admitted request's rows on their way into the source stream, and their acks.

    Only the sender task sends, so a request that gives up (timeout) never cancels a send in
    the middle: whether the stream took a row is always known, except for the single row the
    sender is blocked on at that moment (`sending`), which is reported as pending.
    """

    envelopes: list[Envelope] = field(default_factory=list)
    results: dict[int, int | None] = field(default_factory=dict)
    """Acks by row index: seq when durable, None when not stored."""
    done: anyio.Event = field(default_factory=anyio.Event)
    sent: int = 0
    sending: bool = False
    abandoned: bool = False
    closed: bool = False


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


class HttpPushSource:
    """The push endpoint as a `Source`: serves until cancelled; `url` is set once listening."""

    def __init__(self, config: HttpPushSourceConfig, dead_letter: DeadLetter | None = None) -> None:
        self.config = config
        self.name = config.name
        self.url: str | None = None
        self._dead_letter = dead_letter
        self._tokens = [t.get_secret_value().encode() for t in config.tokens]
        self._inflight = 0
        self._admission_wait = config.admission_wait_ms / 1000
        self._blocked_since: float | None = None
        self._jobs_send: MemoryObjectSendStream[_Job] | None = None
        self._current: _Job | None = None  # the job the sender works on
        self._stopping = False
        self._log = get_logger(source=config.name)

    @property
    def inflight_rows(self) -> int:
        """Rows handed to the pipeline whose ack has not come back yet."""
        return self._inflight

    @property
    def refusing(self) -> bool:
        """True while new requests are answered 429: the pipeline has been full too long."""
        blocked = self._blocked_since
        return blocked is not None and anyio.current_time() - blocked >= self._admission_wait

    async def run(
        self, ctx: SourceContext, *, task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; reports the base URL (`http://host:port`) once accepting."""

        async def post(request: Request) -> Response:
            return await self._post(request)

        app = Starlette(routes=[Route("/v1/tables/{table}/rows", post, methods=["POST"])])
        sock = bind_tcp(self.config.host, self.config.port)
        # Admitted jobs waiting for the sender; bounded by the in-flight budget (>= 1 row each).
        jobs_send, jobs_receive = anyio.create_memory_object_stream[_Job](
            self.config.max_inflight_rows
        )
        self._jobs_send = jobs_send
        async with jobs_send, jobs_receive, anyio.create_task_group() as tg:
            tg.start_soon(self._sender, ctx, jobs_receive)
            self.url = await tg.start(serve_asgi, app, sock)
            self._log.info("http_push_listening", url=self.url)
            task_status.started(self.url)

    async def _sender(self, ctx: SourceContext, jobs: MemoryObjectReceiveStream[_Job]) -> None:
        """Move admitted requests' rows into the source stream, in order of admission."""
        try:
            await self._send_jobs(ctx, jobs)
        finally:
            # Stopping: answer every admitted request now (503 naming what is pending or not
            # sent) instead of letting the server's graceful shutdown cut its connection.
            self._stopping = True
            if self._current is not None:
                self._current.done.set()
            while True:
                try:
                    jobs.receive_nowait().done.set()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break

    async def _send_jobs(self, ctx: SourceContext, jobs: MemoryObjectReceiveStream[_Job]) -> None:
        broken = False
        async for job in jobs:
            self._current = job
            while not broken and not job.abandoned and job.sent < len(job.envelopes):
                # Backpressure: this is where a full pipeline makes the sender wait; new
                # requests see `_blocked_since` and answer 429 instead of queueing behind it.
                self._blocked_since = anyio.current_time()
                job.sending = True
                try:
                    await ctx.send.send(job.envelopes[job.sent])
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    job.sending, broken = False, True  # not delivered
                    self._log.warning("http_push_pipeline_closed")
                    break
                finally:
                    # Cancelled mid-send, `sending` stays set: the row may have been taken.
                    self._blocked_since = None
                job.sending = False
                job.sent += 1
            if broken:
                job.closed = True
                job.done.set()

    # ---- one request ---------------------------------------------------------------------------

    async def _post(self, request: Request) -> Response:
        denied = self._authorize(request.headers.get("authorization"))
        if denied is not None:
            return denied
        url_name = request.path_params["table"]
        target = self.config.table_map.get(url_name)
        if target is None:
            return _json(404, {"error": f"unknown table {url_name!r}"})
        client = request.headers.get("x-client-id")
        if client is not None and not _CLIENT_ID.fullmatch(client):
            return _json(400, {"error": "X-Client-Id must be 1-128 of A-Z a-z 0-9 _ . : -"})
        try:
            fmt = body_format(request.headers.get("content-type"))
            raw = await self._read_body(request)
            c = self.config
            # Decompression and parsing of up to 8 MiB take milliseconds: keep them off the loop.
            parsed: Parsed = await anyio.to_thread.run_sync(
                lambda: _parse_body(
                    decode_body(raw, request.headers.get("content-encoding"), c.max_body_bytes),
                    fmt,
                    max_row_bytes=c.max_row_bytes,
                    max_rows=c.max_rows_per_request,
                )
            )
        except BodyError as exc:
            return _json(exc.status, {"error": exc.message})
        except ClientDisconnect:
            return Response(status_code=400)
        key = f"{self.name}:{client}" if client else self.name
        return await self._accept(url_name, target, key, parsed)

    def _authorize(self, header: str | None) -> Response | None:
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _json(
                401,
                {"error": "missing bearer token; send Authorization: Bearer <token>"},
                {"WWW-Authenticate": 'Bearer realm="streamd"'},
            )
        presented = token.strip().encode()
        # Compare against every token, without stopping at a match, each in constant time.
        ok = False
        for known in self._tokens:
            ok |= hmac.compare_digest(presented, known)
        if not ok:
            return _json(403, {"error": "bearer token not accepted"})
        return None

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise BodyError(413, f"body is {declared} bytes, over {limit}; send smaller requests")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyError(413, f"body is over {limit} bytes; send smaller requests")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _accept(self, url_name: str, target: str, key: str, parsed: Parsed) -> Response:
        n = len(parsed.rows)
        retry = {"Retry-After": str(self.config.retry_after_s)}
        deadline = anyio.current_time() + self.config.ack_timeout_s
        job = _Job()
        if n and self._stopping:
            return self._answer(parsed, job, 0, retry)  # 503: every row not sent
        if n:
            if self._inflight + n > self.config.max_inflight_rows:
                reason = "too many rows awaiting durability; retry later"
                return _json(429, not_admitted(parsed, reason), retry)
            if self.refusing:
                # The pipeline stays full: refuse now rather than hold the connection.
                return _json(429, not_admitted(parsed, "pipeline is full; retry later"), retry)
            job.envelopes = [
                Envelope(target, row, key, self._ack_hook(job, i))
                for i, (_, row) in enumerate(parsed.rows)
            ]
            self._inflight += n  # reserved; each ack gives one back, unsent rows below
            # Never blocks: the buffer holds max_inflight_rows jobs and every job has >= 1 row.
            assert self._jobs_send is not None  # requests arrive only while run() serves
            self._jobs_send.send_nowait(job)
        # Admitted: bad lines go to the dead-letter queue exactly once, from here on.
        await self._dead_letters(url_name, target, parsed.errors)
        if n:
            try:
                with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                    await job.done.wait()
            finally:
                job.abandoned = True  # the sender sends no more of it
                sent = job.sent + job.sending  # the row being sent counts: its ack may come
                self._inflight -= n - sent
        else:
            sent = 0
        return self._answer(parsed, job, sent, retry)

    def _ack_hook(self, job: _Job, index: int) -> Callable[[int | None], None]:
        def ack(seq: int | None) -> None:
            if index in job.results:
                return  # one ack per row; a second one would corrupt the in-flight count
            job.results[index] = seq
            self._inflight -= 1
            if len(job.results) == len(job.envelopes):
                job.done.set()

        return ack

    async def _dead_letters(self, url_name: str, target: str, errors: list[LineError]) -> None:
        for e in errors:
            position = f"{self.name}:{url_name}:line {e.line}"
            if self._dead_letter is None:
                self._log.error("http_push_bad_line", table=target, rule=e.rule, detail=e.detail)
                continue
            try:
                await self._dead_letter(
                    target, raw_row(e.raw), rule=e.rule, detail=e.detail, position=position
                )
            except Exception:
                # The client still learns about the line from the 400; the failure is logged.
                self._log.exception("http_push_dead_letter_failed", table=target, rule=e.rule)

    def _answer(self, parsed: Parsed, job: _Job, sent: int, retry: dict[str, str]) -> Response:
        status, body = answer(parsed, job.results, sent)
        return _json(status, body, retry if status in (503, 507) else None)
