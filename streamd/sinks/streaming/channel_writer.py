"""The channel writer: one per channel, serial appends, a bounded in-flight window, exactly-once replay.

Snowflake's contract (reference §2.6, §2.11) puts exactly-once on the client: a 200 on append is not a
commit, reopening discards uncommitted rows server-side, and progress is only
`last_committed_offset_token`. So the writer keeps every appended batch until a status read shows its
end offset committed, and after any reopen it replays everything past the committed offset.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

import anyio

from streamd.clock import Clock
from streamd.errors import ChannelFenced, FatalError, ReopenChannel, RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.rows import Batch, ChannelKey, format_offset, parse_offset
from streamd.sinks.base import BatchSource
from streamd.sinks.retry import retrying
from streamd.sinks.streaming.commit_tracker import CommitTracker
from streamd.sinks.streaming.pacing import ChannelPacer
from streamd.sinks.window import InflightWindow
from streamd.snowflake.codes import reopen_class
from streamd.snowflake.streaming import ChannelStatus, OpenResult

REOPEN_REFUSED_WAIT_S = 0.5
"""The wait before opening again after the server refused an open with a reopen answer (a 409
while it still settles an earlier opener's data)."""


class ChannelClient(Protocol):
    """The calls a writer makes on its channel (`StreamingClient` in the daemon)."""

    async def open_channel(self, key: ChannelKey) -> OpenResult:
        """Open (or reopen) the channel: a fresh continuation token and its status."""
        ...

    async def append_rows(
        self,
        key: ChannelKey,
        continuation_token: str,
        body: bytes,
        *,
        start_offset_token: str,
        end_offset_token: str,
    ) -> str:
        """Append one NDJSON batch; returns the next continuation token."""
        ...


class ChannelWriter:
    """Appends one lane's batches to one channel and tracks their commit (a `Sink`)."""

    def __init__(
        self,
        client: ChannelClient,
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
        self._release_target = 0
        self._release_due = anyio.Event()
        self._clock = clock
        self._metrics = metrics
        self._tracker = tracker
        self._pacer = pacer
        self._reopen_requested: str | None = None
        self._reopen_event = anyio.Event()
        self._log = get_logger(table=table, channel=key.channel)
        self._inflight: InflightWindow[Batch] = InflightWindow(max_inflight_batches)
        self._token: str | None = None
        self._lock = anyio.Lock()
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
    def name(self) -> str:
        """The channel, for operators."""
        return f"channel {self.key}"

    @property
    def committed_offset(self) -> int:
        """The highest offset known committed, by Snowflake or by the batch source (0: none)."""
        return max(self.committed or 0, self._batches.committed)

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
            "spool": self._batches.stats(),
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
        """Open the channel and replay from what Snowflake (or the batch source) last committed.

        The source's own committed mark covers a channel that lost its offset (expired after 30
        idle days, or dropped): rows it already saw committed are not sent again.
        """
        async with self._lock:
            while True:
                try:
                    await self._open()
                    committed = self.committed_offset
                    await self._batches.release(committed)
                    self._batches.replay_from(committed + 1)
                    return
                except ChannelFenced:
                    raise
                except ReopenChannel as exc:
                    self.last_error = str(exc)
                    self._metrics.reopens.labels(self.table, exc.code or str(exc.status)).inc()
                    self._log.warning("channel_open_refused", reason=exc.code, status=exc.status)
                    await self._clock.sleep(REOPEN_REFUSED_WAIT_S)

    async def run(self) -> None:
        """Append every batch, then wait until all of them are committed."""
        if not self.is_open:
            await self.open()
        self._tracker.follow(self.key.channel, self.table, self.on_status)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_reopen_requests)
            tg.start_soon(self._release_committed)
            while True:
                await self._inflight.wait_room()
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
            await self._inflight.wait_empty()
            await self._batches.release(self._release_target)
            tg.cancel_scope.cancel()

    async def _release_committed(self) -> None:
        """Release what is committed, so its storage can be freed (off the status path)."""
        while True:
            await self._release_due.wait()
            self._release_due = anyio.Event()
            await self._batches.release(self._release_target)

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
        self._tracker.appended(self.key.channel, batch.last_offset)
        self._metrics.rows_appended.labels(self.table).inc(batch.rows)
        self._metrics.bytes_appended.labels(self.table).inc(len(batch.body))
        self._log.debug(
            "batch_appended", rows=batch.rows, bytes=len(batch.body), offset_token=batch.end_token
        )

    async def _recover(self, cause: ReopenChannel) -> None:
        """Reopen and replay everything past the committed offset, until it sticks."""
        while True:
            if issubclass(reopen_class(cause), ChannelFenced):
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
        """Once appended, keep only the batch's offsets: a replay rereads its rows.

        Otherwise the bodies of `max_inflight_batches` uncommitted batches would grow memory
        while Snowflake stops committing. Kept when the source may drop unreleased rows: a
        replay then has only this copy.
        """
        if self._batches.may_drop_unreleased:
            return
        for i in range(len(self._inflight) - 1, -1, -1):
            if self._inflight[i] is batch:
                self._inflight[i] = replace(batch, body=b"")
                return

    async def _with_body(self, batch: Batch) -> Batch:
        """`batch` with its NDJSON body, reread from the source if it was let go."""
        if batch.body:
            return batch
        runs = await self._batches.reread(batch.first_offset, batch.last_offset)
        rows = sum(r.rows for r in runs)
        if not runs or rows != batch.rows or runs[0].first_offset != batch.first_offset:
            raise FatalError(
                f"{self.table}: the spool no longer holds rows {batch.start_token}–"
                f"{batch.end_token} to replay; check spool.when_full and the disk"
            )
        return replace(batch, body=b"".join(r.body for r in runs))

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        self.last_error = str(exc)
        self._metrics.retries.labels(self.table, reason).inc()
        self._log.warning("request_retried", reason=reason, status=exc.status, attempt=attempt)

    def on_status(self, status: ChannelStatus | None) -> int | None:
        """Apply a Bulk Channel Status read (a missing or invalid channel gets reopened); returns
        the highest offset known committed, as the commit tracker's report wants."""
        if status is None or not status.healthy:
            if self.is_open and self._reopen_requested is None:
                self._reopen_requested = "channel_missing" if status is None else status.status_code
                self._reopen_event.set()
        else:
            self._apply_status(status)
        return self.committed

    async def _watch_reopen_requests(self) -> None:
        while True:
            event = self._reopen_event
            await event.wait()
            self._reopen_event = anyio.Event()
            reason, self._reopen_requested = self._reopen_requested, None
            async with self._lock:
                await self._recover(ReopenChannel(f"channel {self.key} unusable", code=reason))

    def _apply_status(self, status: ChannelStatus) -> None:
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
            assert self.committed is not None
            self._release_target = self.committed
            self._release_due.set()
