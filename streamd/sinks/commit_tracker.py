"""Commit progress for every channel of one pipe from one Bulk Channel Status call (§2.8).

Polls fast while rows are in flight and commits keep coming, backs off while a commit is slow, and
checks idle channels only now and then (so a channel Snowflake expired or dropped is noticed and
reopened before rows need it).
"""

from __future__ import annotations

from typing import Protocol

import anyio

from streamd.clock import Clock, wait_event
from streamd.errors import RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.sinks.retry import retrying
from streamd.snowflake.streaming import ChannelStatus, StreamingClient


class TrackedChannel(Protocol):
    """What the tracker needs from a channel writer."""

    table: str

    @property
    def channel_name(self) -> str:
        """The channel's name as sent to Snowflake."""
        ...

    @property
    def has_inflight(self) -> bool:
        """Whether rows are appended but not yet known committed."""
        ...

    def on_status(self, status: ChannelStatus | None) -> bool:
        """Apply a status read (None: the channel is gone); True when commits advanced."""
        ...


class CommitTracker:
    """One poller per pipe; writers register and `wake()` it after an append."""

    def __init__(
        self,
        client: StreamingClient,
        database: str,
        schema: str,
        pipe: str,
        *,
        clock: Clock,
        metrics: Metrics,
        min_interval_s: float,
        max_interval_s: float = 2.0,
        idle_interval_s: float = 60.0,
    ) -> None:
        self.client = client
        self.database, self.schema, self.pipe = database, schema, pipe
        self._clock = clock
        self._metrics = metrics
        self.min_interval_s = min_interval_s
        self.max_interval_s = max(max_interval_s, min_interval_s)
        self.idle_interval_s = idle_interval_s
        self.interval_s = min_interval_s
        self._channels: list[TrackedChannel] = []
        self._woken = anyio.Event()
        self.polls = 0
        self._log = get_logger(pipe=f"{database}.{schema}.{pipe}")

    def __repr__(self) -> str:
        return (
            f"<CommitTracker {self.database}.{self.schema}.{self.pipe} channels={len(self._channels)} "
            f"interval={self.interval_s:.3f}s polls={self.polls}>"
        )

    def register(self, channel: TrackedChannel) -> None:
        """Track `channel` from the next poll on."""
        self._channels.append(channel)

    def wake(self) -> None:
        """Rows were appended: start polling at the fast interval."""
        self._woken.set()

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            if any(c.has_inflight for c in self._channels):
                await self._clock.sleep(self.interval_s)
            else:
                woken = self._woken
                self.interval_s = self.min_interval_s
                # Idle: sleep until an append wakes us, but look at idle channels now and then.
                if not await wait_event(self._clock, woken, self.idle_interval_s):
                    self._log.debug("idle_channels_checked", channels=len(self._channels))
            if self._woken.is_set():
                self._woken = anyio.Event()
            await self.poll_once()

    async def poll_once(self) -> bool:
        """One Bulk Channel Status call for every registered channel; True if any commit advanced."""
        names = [c.channel_name for c in self._channels]
        if not names:
            return False
        statuses = await retrying(
            lambda: self.client.bulk_channel_status(self.database, self.schema, self.pipe, names),
            self._clock,
            self._on_retry,
        )
        self.polls += 1
        progressed = False
        busy = False
        for channel in self._channels:
            busy = busy or channel.has_inflight
            progressed = channel.on_status(statuses.get(channel.channel_name)) or progressed
        # Adaptive: fast while commits flow, slower while a commit is overdue (Snowflake is busy).
        if progressed or not busy:
            self.interval_s = self.min_interval_s
        else:
            self.interval_s = min(self.interval_s * 1.5, self.max_interval_s)
        return progressed

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        for table in {c.table for c in self._channels}:
            self._metrics.retries.labels(table, reason).inc()
        self._log.warning(
            "request_retried", call="bulk_channel_status", reason=reason, attempt=attempt
        )
