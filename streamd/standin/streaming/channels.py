"""Channels and pipes: sequencers, validity, rate limits, and handing batches to the scheduler.

A 200 on append only means "received": batches wait their commit delay in memory and are then
group-committed per database (§2.6, §2.18, `commit_scheduler.py`). Reopening a channel bumps its
client sequencer, clears an invalidation and discards what it had not committed yet; the old
opener's tokens go stale (§2.5, §2.11).
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from streamd.standin.faults import FaultPlan
from streamd.standin.storage.database import ChannelLimitError, ChannelRow, Storage
from streamd.standin.storage.ddl import TableSpec
from streamd.standin.streaming.commit import Commit
from streamd.standin.streaming.commit_scheduler import CommitScheduler, Pending
from streamd.standin.streaming.errors import StreamingError
from streamd.standin.streaming.ids import ChannelId
from streamd.standin.streaming.limits import RATE_LIMIT_CODE, ChannelRateLimiter, RateLimited
from streamd.standin.streaming.parse_rows import (
    InvalidRowsBody,
    ParsedRows,
    decode_body,
    parse_rows,
)
from streamd.standin.streaming.replay import FIRST_ATTEMPT, Attempt, RecentRequests
from streamd.standin.streaming.timing import BatchTiming, TimingLog
from streamd.standin.streaming.tokens import TokenClaims, TokenError, decode_token, encode_token

MAX_CHANNELS_PER_PIPE = 2000
"""Active named channels per pipe (§2.13, default; Snowflake raises it through Support)."""

DEFAULT_PIPE_SUFFIX = "-STREAMING"


@dataclass(slots=True)
class LiveChannel:
    """What appends check against: the current opener and the next expected row sequencer."""

    client_seq: int
    row_seq: int
    uncommitted: int = 0
    """Batches appended and not yet committed or discarded (pending or being committed)."""
    invalid_code: str | None = None
    """Set by fault injection: the channel is invalid until reopened."""
    recent: RecentRequests = field(default_factory=RecentRequests)
    """Answers to this opener's latest appends, for idempotent retries (`replay.py`)."""


class StandinState:
    """The live streaming state of one stand-in process."""

    def __init__(
        self,
        storage: Storage,
        tables: list[TableSpec],
        commit_delay_s: float,
        faults: FaultPlan,
        *,
        enforce_rate_limits: bool = True,
        max_channels_per_pipe: int | None = MAX_CHANNELS_PER_PIPE,
        timing: TimingLog | None = None,
    ) -> None:
        self.storage = storage
        self.limits = ChannelRateLimiter() if enforce_rate_limits else None
        self.max_channels_per_pipe = max_channels_per_pipe
        self._secret = secrets.token_bytes(32)
        self._tables = {(t.database, t.schema, t.name): t for t in tables}
        self._channels: dict[ChannelId, LiveChannel] = {}
        self.replayed_appends = 0
        """Retries answered from memory instead of being applied again (`replay.py`)."""
        self.refused_opens = 0
        """Opens answered 409 ERR_CHANNEL_HAS_UNCOMMITTED_DATA (for tests and inspection)."""
        self._scheduler = CommitScheduler(
            storage.write, faults, commit_delay_s, self._settled, timing
        )

    # ---- pipes ---------------------------------------------------------------------------

    async def resolve_pipe(self, db: str, schema: str, pipe: str) -> TableSpec:
        """The table behind a pipe; 404 naming the pipe when any part of it does not exist."""
        db, schema, pipe = db.upper(), schema.upper(), pipe.upper()
        if pipe.endswith(DEFAULT_PIPE_SUFFIX) and db in self.storage.databases:
            # Default pipe <TABLE>-STREAMING exists implicitly for every table (§2.15).
            name = pipe[: -len(DEFAULT_PIPE_SUFFIX)]
            spec = self._tables.get((db, schema, name))
            if spec is None:
                spec = await self.storage.read(
                    functools.partial(
                        self.storage.table_spec_sync, db=db, schema=schema, table=name
                    )
                )
                if spec is not None:
                    self._tables[(db, schema, name)] = spec
            if spec is not None:
                return spec
        raise StreamingError(
            404,
            "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
            f"Pipe '{db}.{schema}.{pipe}' does not exist or not authorized "
            "(the stand-in serves default pipes <TABLE>-STREAMING of existing tables)",
        )

    def forget_tables(self) -> None:
        """Drop cached table specs learned from DuckDB (after DDL through the SQL API)."""
        self._tables = {k: v for k, v in self._tables.items() if k[0] in self.storage.databases}

    def add_tables(self, tables: list[TableSpec]) -> None:
        """Remember Snowflake-declared table specs (from DDL run after start-up)."""
        self._tables.update({(t.database, t.schema, t.name): t for t in tables})

    # ---- channel calls -------------------------------------------------------------------

    async def open_channel(
        self, cid: ChannelId, offset_token: str | None, fail_on_uncommitted: bool
    ) -> tuple[str, ChannelRow]:
        """Open Channel (§2.5): create or bump the client sequencer; returns token and status."""
        await self.resolve_pipe(cid.db, cid.schema, cid.pipe)
        live = self._channels.get(cid)
        if live is not None and live.uncommitted and fail_on_uncommitted:
            self.refused_opens += 1
            raise _uncommitted(cid)
        self._scheduler.discard(cid)
        try:
            row = await self.storage.write(
                functools.partial(
                    self.storage.open_channel_sync,
                    db=cid.db,
                    schema=cid.schema,
                    pipe=cid.pipe,
                    channel=cid.channel,
                    offset=offset_token,
                    max_channels=self.max_channels_per_pipe,
                )
            )
        except ChannelLimitError as err:
            # Status and code undocumented (§2.13 only gives the limit): a 400, since waiting does
            # not help unless channels are dropped, with a code of the stand-in's choosing.
            raise StreamingError(400, "ERR_TOO_MANY_CHANNELS", f"{err}; drop channels") from err
        live = self._channels.get(cid)
        if live is None or row.client_seq > live.client_seq:
            self._channels[cid] = live = LiveChannel(row.client_seq, 0)
        # An old opener may have appended while the bump was being written: drop that too.
        self._scheduler.discard(cid)
        token = self._token(cid, row.client_seq, 0)
        return token, row

    async def append(
        self,
        cid: ChannelId,
        continuation_token: str,
        body: bytes,
        content_encoding: str | None,
        start_offset: str | None,
        end_offset: str | None,
        attempt: Attempt = FIRST_ATTEMPT,
        timing: BatchTiming | None = None,
    ) -> str:
        """Append Rows (§2.6): check the token chain, parse, queue for commit; next token."""
        load = functools.partial(decode_body, body, content_encoding)
        return await self.append_loaded(
            cid, continuation_token, load, start_offset, end_offset, attempt, timing
        )

    async def append_loaded(
        self,
        cid: ChannelId,
        continuation_token: str,
        load: Callable[[], bytes],
        start_offset: str | None,
        end_offset: str | None,
        attempt: Attempt = FIRST_ATTEMPT,
        timing: BatchTiming | None = None,
    ) -> str:
        """Append NDJSON that `load` produces in a worker thread (raising InvalidRowsBody when it
        cannot): /rows bodies and file-mode fragments share the token chain and commits."""
        # Rejected early, before the body is read; a retry of an applied request is answered here.
        live, replayed = self._check_token(cid, continuation_token, attempt)
        if replayed is not None:
            return replayed
        spec = await self.resolve_pipe(cid.db, cid.schema, cid.pipe)
        try:
            if self.limits is not None:
                self.limits.check_request(cid)
            try:
                rows, size = await anyio.to_thread.run_sync(_parse, spec, load)
            except StreamingError:
                # The first attempt may have finished (and cleaned up its input) meanwhile.
                live, replayed = self._check_token(cid, continuation_token, attempt)
                if replayed is not None:
                    return replayed
                raise
            # Checked again: the channel may have been reopened, or the first attempt of this
            # retry applied, while the body was parsed.
            live, replayed = self._check_token(cid, continuation_token, attempt)
            if replayed is not None:
                return replayed
            if self.limits is not None:
                self.limits.accept(cid, size)
        except RateLimited as err:
            raise StreamingError(
                429, RATE_LIMIT_CODE, err.message, {"Retry-After": str(err.retry_after_s)}
            ) from err
        commit = Commit(
            table=spec,
            pipe=cid.pipe,
            channel=cid.channel,
            rows=rows,
            start_offset=start_offset,
            end_offset=end_offset,
            client_seq=live.client_seq,
            row_seq=live.row_seq + 1,
            appended_at=time.monotonic(),
        )
        live.row_seq += 1
        live.uncommitted += 1
        self._scheduler.schedule(cid, commit, timing)
        next_token = self._token(cid, live.client_seq, live.row_seq)
        live.recent.remember(attempt, continuation_token, next_token)
        return next_token

    async def drop_channel(self, cid: ChannelId, fail_on_uncommitted: bool) -> None:
        """Drop Channel (§2.9): forget the channel, its offset token and its pending data."""
        await self.resolve_pipe(cid.db, cid.schema, cid.pipe)
        live = self._channels.get(cid)
        if live is not None and live.uncommitted and fail_on_uncommitted:
            raise _uncommitted(cid)
        self._scheduler.discard(cid)
        self._channels.pop(cid, None)
        if self.limits is not None:
            self.limits.forget(cid)
        await self.storage.write(
            functools.partial(
                self.storage.drop_channel_sync,
                db=cid.db,
                schema=cid.schema,
                pipe=cid.pipe,
                channel=cid.channel,
            )
        )

    async def channel_statuses(
        self, db: str, schema: str, pipe: str, names: list[str]
    ) -> dict[str, ChannelRow]:
        """Bulk Get Channel Status (§2.8), keyed by the requested spelling; unknown names absent."""
        await self.resolve_pipe(db, schema, pipe)
        db, schema, pipe = db.upper(), schema.upper(), pipe.upper()
        # Stored names are upper-cased (path names are case-insensitive, §2.5), so the
        # "case-sensitive" body names are matched after upper-casing too: tolerant where the docs
        # contradict each other.
        wanted = sorted({n.upper() for n in names})
        rows = await self.storage.read(
            functools.partial(
                self.storage.read_channels_sync, db=db, schema=schema, pipe=pipe, channels=wanted
            )
        )
        return {n: rows[n.upper()] for n in names if n.upper() in rows}

    def uncommitted_batches(self) -> int:
        """Batches appended but not yet committed (for tests and inspection)."""
        return sum(c.uncommitted for c in self._channels.values())

    def invalidate(self, cid: ChannelId, code: str) -> bool:
        """Mark a live channel invalid until reopened, discarding its uncommitted batches."""
        live = self._channels.get(cid)
        if live is None:
            return False
        live.invalid_code = code
        self._scheduler.discard(cid)
        return True

    def status_code(self, cid: ChannelId) -> str:
        """`channel_status_code`: SUCCESS, or the code the channel was invalidated with."""
        live = self._channels.get(cid)
        return "SUCCESS" if live is None or live.invalid_code is None else live.invalid_code

    # ---- commit scheduler ----------------------------------------------------------------

    async def run_commits(self) -> None:
        """Commit batches when due, forever; cancel to stop."""
        await self._scheduler.run()

    async def flush(self) -> None:
        """Commit everything pending now (graceful shutdown, tests)."""
        await self._scheduler.flush()

    # ---- helpers -------------------------------------------------------------------------

    def _check_token(
        self, cid: ChannelId, token: str, attempt: Attempt
    ) -> tuple[LiveChannel, str | None]:
        """The live channel the token may append to, or the earlier answer to a retry."""
        try:
            claims = decode_token(self._secret, token)
        except TokenError as err:
            # Undocumented case; ERR_CHANNEL_MUST_BE_REOPENED (§2.10) is the documented code whose
            # remedy (reopen, get a fresh token) fixes it. Tokens from an earlier stand-in process
            # land here too, since the signing secret is per process.
            raise StreamingError(
                400, "ERR_CHANNEL_MUST_BE_REOPENED", f"Invalid continuation token: {err}"
            ) from err
        if (claims.db, claims.schema, claims.pipe, claims.channel) != tuple(cid):
            raise StreamingError(
                400,
                "ERR_CHANNEL_MUST_BE_REOPENED",
                f"Continuation token belongs to channel {claims.channel} of "
                f"{claims.db}.{claims.schema}.{claims.pipe}, not to {cid.channel}",
            )
        live = self._channels.get(cid)
        if live is None:
            raise StreamingError(
                400,
                "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED",  # seen in the wild, §2.10
                f"Channel {cid.channel} on pipe {cid.db}.{cid.schema}.{cid.pipe} does not exist",
            )
        if claims.client_seq != live.client_seq:
            raise StreamingError(
                400,
                "STALE_CONTINUATION_TOKEN_SEQUENCER",
                "Channel sequencer in the continuation token is stale. Please reopen the channel",
            )
        if live.invalid_code is not None:
            raise StreamingError(
                400,
                live.invalid_code,
                f"Channel {cid.channel} is invalid ({live.invalid_code}). Please reopen the channel",
            )
        if claims.row_seq != live.row_seq:
            replayed = live.recent.replay(attempt, token)
            if replayed is not None:
                self.replayed_appends += 1
                return live, replayed
            # A reused token without a matching requestId lands here: the docs leave that case
            # open, and reopen + replay from the committed offset is the exactly-once answer (§2.6).
            raise StreamingError(
                400,
                "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP",
                f"Row sequencer {claims.row_seq} in the continuation token does not match the "
                f"channel's {live.row_seq}. Please reopen the channel",
            )
        return live, None

    def _token(self, cid: ChannelId, client_seq: int, row_seq: int) -> str:
        claims = TokenClaims(cid.db, cid.schema, cid.pipe, cid.channel, client_seq, row_seq)
        return encode_token(self._secret, claims)

    def _settled(self, pending: Pending) -> None:
        live = self._channels.get(pending.channel)
        if live is not None and live.client_seq == pending.commit.client_seq:
            live.uncommitted -= 1


def _parse(spec: TableSpec, load: Callable[[], bytes]) -> tuple[ParsedRows, int]:
    try:
        raw = load()
        return parse_rows(spec, raw), len(raw)
    except InvalidRowsBody as err:
        raise StreamingError(400, err.code, err.message) from err


def _uncommitted(cid: ChannelId) -> StreamingError:
    return StreamingError(
        409,
        "ERR_CHANNEL_HAS_UNCOMMITTED_DATA",
        f"Channel {cid.channel} has uncommitted data and fail_on_uncommitted_rows is true",
    )
