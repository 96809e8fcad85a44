"""The channel writer: one per channel, serial appends, a bounded in-flight window, exactly-once replay.

Snowflake's contract (reference §2.6, §2.11) puts exactly-once on the client: a 200 on append is not a
commit, reopening discards uncommitted rows server-side, and progress is only
`last_committed_offset_token`. So the writer keeps every appended batch until a status read shows its
end offset committed, and after any reopen it replays everything past the committed offset.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Protocol

import anyio

from streamd.clock import Clock
from streamd.errors import ChannelFenced, FatalError, ReopenChannel, RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.rows import Batch, ChannelKey, format_offset, parse_offset
from streamd.sinks.retry import retrying
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.sinks.streaming.pacing import ChannelPacer
from streamd.snowflake.streaming import ChannelStatus, StreamingClient
from streamd.spool import LaneSpool

# A stale sequencer means someone else reopened our channel: we never reuse a token across our own
# reopens, so the only other opener is another daemon with the same identity (reference §2.5, §2.11).
MAX_REPLAY_BYTES = 1 << 40
"""No byte limit on a replay's read-back: the batch is re-cut by its row count, exactly as sent."""
_FENCING_CODES = frozenset(
    {"STALE_CONTINUATION_TOKEN_SEQUENCER", "ERR_CHANNEL_HAS_INVALID_CLIENT_SEQUENCER"}
)


class BatchSource(Protocol):
    """Where a writer pulls its batches from: the lane's spool, through its batcher."""

    spool: LaneSpool

    def start_at(self, seq: int) -> None:
        """Hand out rows from spool sequence `seq` on (everything before is committed)."""
        ...

    async def next_batch(self) -> Batch | None:
        """The next batch to append (offsets = spool sequences), or None when the input ended."""
        ...


class ChannelWriter:
    """Appends one lane's batches to one channel and tracks their commit."""

    def __init__(
        self,
        client: StreamingClient,
        key: ChannelKey,
        table: str,
        batches: BatchSource,
        *,
        clock: Clock,
        metrics: Metrics,
        tracker: CommitTracker,
        max_inflight_batches: int,
        pacer: ChannelPacer | None = None,
    ) -> None:
        self.client = client
        self.key = key
        self.table = table
        self._batches = batches
        self._spool = batches.spool
        self._spool_target = 0
        self._spool_progress = anyio.Event()
        self._clock = clock
        self._metrics = metrics
        self._window = max_inflight_batches
        self._tracker = tracker
        self._pacer = pacer
        self._reopen_requested: str | None = None
        self._reopen_event = anyio.Event()
        self._log = get_logger(table=table, channel=key.channel)
        self._inflight: deque[Batch] = deque()
        self._token: str | None = None
        self._lock = anyio.Lock()
        self._progress = anyio.Event()
        self.committed: int | None = None
        self.status: ChannelStatus | None = None
        self.is_open = False
        self._errors_seen = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"<ChannelWriter {self.key} committed={self.committed} inflight={len(self._inflight)}>"
        )

    @property
    def channel_name(self) -> str:
        """The channel's name as sent to Snowflake."""
        return self.key.channel

    @property
    def has_inflight(self) -> bool:
        """Whether some appended rows are not yet known committed."""
        return bool(self._inflight)

    @property
    def inflight_rows(self) -> int:
        """Rows appended (or being appended) but not yet committed."""
        return sum(b.rows for b in self._inflight)

    def commit_lag_s(self) -> float:
        """Age of the oldest row not yet committed; 0 when everything is committed."""
        if not self._inflight:
            return 0.0
        return max(0.0, self._clock.monotonic() - self._inflight[0].oldest_event_monotonic)

    def snapshot(self) -> dict[str, Any]:
        """This channel's state for `inspect`."""
        status = self.status
        return {
            "table": self.table,
            "channel": self.key.channel,
            "pipe": self.key.pipe,
            "open": self.is_open,
            "committed_offset_token": None
            if self.committed is None
            else format_offset(self.committed),
            "spool": self._spool.stats(),
            "inflight_batches": len(self._inflight),
            "inflight_rows": self.inflight_rows,
            "inflight_bytes": sum(len(b.body) for b in self._inflight),
            "commit_lag_s": round(self.commit_lag_s(), 3),
            "rows_inserted": status.rows_inserted if status else 0,
            "rows_error_count": status.rows_error_count if status else 0,
            "last_error_message": status.last_error_message if status else None,
            "status_code": status.status_code if status else None,
        }

    async def open(self) -> None:
        """Open the channel and replay the spool from what Snowflake (or the spool) last committed.

        The spool's own committed mark covers a channel that lost its offset (expired after 30
        idle days, or dropped): rows it already saw committed are not sent again.
        """
        async with self._lock:
            while True:
                try:
                    await self._open()
                    committed = max(self.committed or 0, self._spool.committed)
                    await self._spool.commit(committed)
                    self._batches.start_at(committed + 1)
                    return
                except ChannelFenced:
                    raise
                except ReopenChannel as exc:
                    # e.g. 409 while the server still settles an earlier opener's data: try again.
                    self.last_error = str(exc)
                    self._metrics.reopens.labels(self.table, exc.code or str(exc.status)).inc()
                    self._log.warning("channel_open_refused", reason=exc.code, status=exc.status)
                    await self._clock.sleep(0.5)

    async def run(self) -> None:
        """Append every batch, then wait until all of them are committed."""
        if not self.is_open:
            await self.open()
        self._tracker.register(self)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_reopen_requests)
            tg.start_soon(self._release_spool)
            while True:
                while len(self._inflight) >= self._window:
                    await self._wait_progress()
                batch = await self._batches.next_batch()
                if batch is None:
                    break
                async with self._lock:
                    # Kept before the request goes out (if its outcome is unknown it is replayed),
                    # and only under the lock, so a concurrent recovery cannot replay it twice.
                    self._inflight.append(batch)
                    await self._append_or_recover(batch)
                    self._forget_body(batch)
                # Not held until the next batch comes: that wait lasts as long as a commit stall.
                del batch
            while self._inflight:
                await self._wait_progress()
            await self._spool.commit(self._spool_target)
            tg.cancel_scope.cancel()

    async def _release_spool(self) -> None:
        """Tell the spool what is committed, so it can free whole segments (off the status path)."""
        while True:
            progress = self._spool_progress
            await progress.wait()
            await self._spool.commit(self._spool_target)

    async def _wait_progress(self) -> None:
        progress = self._progress
        await progress.wait()

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    async def _open(self) -> None:
        result = await retrying(
            lambda: self.client.open_channel(self.key), self._clock, self._on_retry
        )
        self._token = result.continuation_token
        self.is_open = True
        self._apply_status(result.status)
        self._log.info(
            "channel_opened",
            offset_token=result.status.last_committed_offset_token,
            inflight_batches=len(self._inflight),
        )

    async def _append_or_recover(self, batch: Batch) -> None:
        try:
            await self._send(batch)
        except ReopenChannel as exc:
            await self._recover(exc)

    async def _send(self, batch: Batch) -> None:
        if self._pacer is not None:
            waited = await self._pacer.before_append(len(batch.body))
            if waited:
                self._log.debug("append_paced", waited_s=round(waited, 3))

        async def append() -> str:
            assert self._token is not None
            with self._metrics.request_seconds.labels("append").time():
                return await self.client.append_rows(
                    self.key,
                    self._token,
                    batch.body,
                    start_offset_token=batch.start_token,
                    end_offset_token=batch.end_token,
                )

        self._token = await retrying(append, self._clock, self._on_retry)
        if self._pacer is not None:
            self._pacer.appended(len(batch.body))
        self._tracker.appended(self, batch.last_offset)
        self._metrics.rows_appended.labels(self.table).inc(batch.rows)
        self._metrics.bytes_appended.labels(self.table).inc(len(batch.body))
        self._log.debug(
            "batch_appended", rows=batch.rows, bytes=len(batch.body), offset_token=batch.end_token
        )

    async def _recover(self, cause: ReopenChannel) -> None:
        """Reopen and replay everything past the committed offset, until it sticks."""
        while True:
            if isinstance(cause, ChannelFenced) or cause.code in _FENCING_CODES:
                self.is_open = False
                self._metrics.fenced.labels(self.table).inc()
                self._log.error(
                    "channel_fenced",
                    code=cause.code,
                    fix="another streamd with the same delivery.channel_prefix opened this channel; "
                    "give each daemon its own prefix and restart",
                )
                raise ChannelFenced(
                    f"channel {self.key} was taken over by another opener; give each daemon its own "
                    "delivery.channel_prefix",
                    status=cause.status,
                    code=cause.code,
                )
            self._metrics.reopens.labels(self.table, cause.code or str(cause.status)).inc()
            self._log.warning("channel_reopening", reason=cause.code, status=cause.status)
            try:
                await self._open()
                for batch in list(self._inflight):
                    await self._send(await self._with_body(batch))
                return
            except ReopenChannel as again:
                cause = again

    def _forget_body(self, batch: Batch) -> None:
        """Once appended, keep only the batch's offsets: a replay reads its rows from the spool.

        Holding the bodies of `max_inflight_batches` uncommitted batches was the one part of RSS
        that grew when Snowflake stopped committing (bench/stall.py). Not with `drop_oldest`:
        that spool may delete rows still in flight, which must then be replayed from memory.
        """
        if self._spool.config.when_full == "drop_oldest":
            return
        for i in range(len(self._inflight) - 1, -1, -1):
            if self._inflight[i] is batch:
                self._inflight[i] = replace(batch, body=b"")
                return

    async def _with_body(self, batch: Batch) -> Batch:
        """`batch` with its NDJSON body, read back from the spool if it was let go."""
        if batch.body:
            return batch
        run = await self._spool.read_run(batch.first_offset, batch.rows, MAX_REPLAY_BYTES)
        if run.rows != batch.rows or run.first != batch.first_offset:
            raise FatalError(
                f"{self.table}: the spool no longer holds rows {batch.start_token}–"
                f"{batch.end_token} to replay; check spool.when_full and the disk"
            )
        return replace(batch, body=run.body())

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        self.last_error = str(exc)
        self._metrics.retries.labels(self.table, reason).inc()
        self._log.warning("request_retried", reason=reason, status=exc.status, attempt=attempt)

    def on_status(self, status: ChannelStatus | None) -> bool:
        """Apply a Bulk Channel Status read; a missing or invalid channel gets reopened."""
        if status is None or not status.healthy:
            if self.is_open and self._reopen_requested is None:
                self._reopen_requested = "channel_missing" if status is None else status.status_code
                self._reopen_event.set()
            return False
        return self._apply_status(status)

    async def _watch_reopen_requests(self) -> None:
        while True:
            event = self._reopen_event
            await event.wait()
            self._reopen_event = anyio.Event()
            reason, self._reopen_requested = self._reopen_requested, None
            async with self._lock:
                await self._recover(ReopenChannel(f"channel {self.key} unusable", code=reason))

    def _apply_status(self, status: ChannelStatus) -> bool:
        self.status = status
        committed = parse_offset(status.last_committed_offset_token)
        if committed is not None and (self.committed is None or committed > self.committed):
            self.committed = committed
        if status.rows_error_count > self._errors_seen:
            new = status.rows_error_count - self._errors_seen
            self._metrics.rows_errored.labels(self.table).inc(new)
            self._log.warning(
                "rows_errored",
                rows=new,
                message=status.last_error_message,
                offset_token=status.last_error_offset_upper_bound,
            )
        self._errors_seen = status.rows_error_count
        done = 0
        while (
            self._inflight
            and self.committed is not None
            and self._inflight[0].last_offset <= self.committed
        ):
            batch = self._inflight.popleft()
            done += batch.rows
            self._log.info("batch_committed", rows=batch.rows, offset_token=batch.end_token)
        if done:
            self._metrics.rows_committed.labels(self.table).inc(done)
            self._signal_progress()
            assert self.committed is not None
            self._spool_target = self.committed
            self._spool_progress.set()
            self._spool_progress = anyio.Event()
        return done > 0
