"""Commit progress for every channel of one pipe, from one Bulk Channel Status call (§2.8).

Polls follow the appends: a fixed period would add up to a whole period to every commit seen.
Commits within a channel come in order, so only each channel's oldest uncommitted batch (its
head) is waited for:

- first look: `EARLY` of the channel's usual processing latency after the append was
  acknowledged, so commits sooner than average are not waited for. Snowflake reports an average
  per channel (`snowflake_avg_processing_latency_ms`); the usual one is the lowest report of the
  last `LATENCY_WINDOW_S`, because a few slow commits pull the average up for many polls;
- then every *resolution* (`status_poll_ms`, or `RESOLUTION_SHARE` of the latency when longer)
  while the head is up to `GRACE` usual latencies late: commit times spread, and a late poll
  adds its whole delay to every row of the batch;
- beyond that Snowflake is stalled: the wait grows to `LATE_SHARE` of the delay past the grace,
  up to `status_poll_max_ms`, so a late commit is still seen soon after it and a stalled
  Snowflake is not hammered. A head not yet due is looked at least every `status_poll_max_ms`,
  so a stale latency cannot hold the next poll back for long.

One call covers every channel of the pipe and two calls are never closer than the resolution, so
a pipe is polled at most 1/resolution times a second. Idle channels are still checked every
`idle_interval_s`, so a channel Snowflake expired or dropped is reopened before rows need it.

The tracker holds no writers: each channel is followed by name with a callback that gets the
channel's status and answers what the channel now knows committed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from streamd.clock import Clock, wait_event
from streamd.errors import RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.sinks.retry import retrying
from streamd.snowflake.streaming import ChannelStatus

EARLY = 0.75
"""A batch is first looked for this share of Snowflake's latency after its acknowledgement."""
LATE_SHARE = 0.2
"""Past the grace, a head still missing waits this share of the time beyond it (or more)."""
GRACE = 8.0
"""A head is looked for every resolution until it is this many usual latencies late."""
RESOLUTION_SHARE = 0.1
"""A retry waits at least this share of Snowflake's reported processing latency."""
LATENCY_WINDOW_S = 10.0
"""How long reports of the latency are kept per channel; the lowest is aimed at. In seconds, not
polls: after a stall the reported average decays over many commits, and polls come many times a
second, so a count of polls would keep the stall's figure."""


class StatusClient(Protocol):
    """The one call the tracker makes (`StreamingClient` in the daemon)."""

    async def bulk_channel_status(
        self, database: str, schema: str, pipe: str, channel_names: Sequence[str]
    ) -> dict[str, ChannelStatus]:
        """Status of several channels of one pipe, keyed by name; unknown channels are absent."""
        ...


StatusReport = Callable[[ChannelStatus | None], int | None]
"""Applies one status read of a channel (None: the channel is gone) and returns the highest offset
the channel now knows committed (None before any)."""


@dataclass(slots=True)
class _Followed:
    """A channel the tracker polls: its table (for metrics), its report, what it last answered."""

    table: str
    report: StatusReport
    committed: int | None = None


@dataclass(slots=True)
class _Expected:
    """An acknowledged batch not yet seen committed, and when to look for its commit next."""

    last_offset: int
    acked_at: float
    check_at: float


@dataclass(slots=True)
class _Latency:
    """A channel's recent reports of Snowflake's processing latency: (when, seconds)."""

    reports: deque[tuple[float, float]] = field(default_factory=deque)
    usual_s: float = 0.0
    """The lowest report of the last `LATENCY_WINDOW_S` (0 before any)."""

    def add(self, now: float, seconds: float) -> None:
        """Keep a report made at `now`."""
        self.reports.append((now, seconds))
        while self.reports[0][0] < now - LATENCY_WINDOW_S:
            self.reports.popleft()
        self.usual_s = min(value for _, value in self.reports)


class CommitTracker:
    """One poller per pipe; channels are followed by name and report each acknowledged append."""

    def __init__(
        self,
        client: StatusClient,
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
        self._channels: dict[str, _Followed] = {}
        self._expected: dict[str, deque[_Expected]] = {}
        self._latency: dict[str, _Latency] = {}
        """Snowflake's reported processing latency per channel, from its recent statuses."""
        self._last_poll = -math.inf
        self._woken = anyio.Event()
        self.polls = 0
        self._log = get_logger(pipe=f"{database}.{schema}.{pipe}")

    def __repr__(self) -> str:
        waiting = sum(len(q) for q in self._expected.values())
        return (
            f"<CommitTracker {self.database}.{self.schema}.{self.pipe} channels={len(self._channels)} "
            f"resolution={self.resolution_s:.3f}s waiting={waiting} polls={self.polls}>"
        )

    @property
    def resolution_s(self) -> float:
        """The shortest gap between polls, and the first retry after a missed commit."""
        fastest = min((lat.usual_s for lat in self._latency.values()), default=0.0)
        return max(self.min_interval_s, fastest * RESOLUTION_SHARE)

    def _first_look_s(self, channel: str) -> float:
        """How long after an acknowledgement a batch of `channel` is first looked for."""
        latency = self._latency.get(channel)
        return EARLY * (latency.usual_s if latency is not None else 0.0)

    def follow(self, channel: str, table: str, report: StatusReport) -> None:
        """Poll `channel` from the next poll on, handing each of its statuses to `report`."""
        self._channels[channel] = _Followed(table, report)

    def appended(self, channel: str, last_offset: int) -> None:
        """A batch ending at `last_offset` was acknowledged: look for its commit when it is due."""
        now = self._clock.monotonic()
        check_at = now + min(self._first_look_s(channel), self.max_interval_s)
        queue = self._expected.setdefault(channel, deque())
        for entry in queue:
            if entry.last_offset == last_offset:
                # Replayed after a reopen: Snowflake's clock for it starts again.
                entry.acked_at, entry.check_at = now, check_at
                break
        else:
            queue.append(_Expected(last_offset, now, check_at))
        self._woken.set()

    def next_poll_at(self) -> float | None:
        """When the next poll is due (never within the resolution of the last); None when idle."""
        heads = [q[0].check_at for q in self._expected.values() if q]
        if not heads:
            return None
        return max(min(heads), self._last_poll + self.resolution_s)

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            woken = self._woken
            at = self.next_poll_at()
            if at is None:
                # Idle: sleep until an append is reported, but look at idle channels now and then.
                if await wait_event(self._clock, woken, self.idle_interval_s):
                    self._woken = anyio.Event()
                    continue
                self._log.debug("idle_channels_checked", channels=len(self._channels))
            else:
                delay = at - self._clock.monotonic()
                if delay > 0 and await wait_event(self._clock, woken, delay):
                    self._woken = anyio.Event()
                    continue  # an append may bring the next poll forward
            await self.poll_once()

    async def poll_once(self) -> bool:
        """One Bulk Channel Status call for every followed channel; True if any commit advanced."""
        names = list(self._channels)
        if not names:
            return False
        started = self._clock.monotonic()
        statuses = await retrying(
            lambda: self.client.bulk_channel_status(self.database, self.schema, self.pipe, names),
            self._clock,
            self._on_retry,
        )
        self._last_poll = started
        self.polls += 1
        progressed = False
        for name in names:  # a channel followed while the call was out waits for the next poll
            followed = self._channels[name]
            status = statuses.get(name)
            committed = followed.report(status)
            if committed is not None and (
                followed.committed is None or committed > followed.committed
            ):
                followed.committed = committed
                progressed = True
            if status is not None and status.avg_processing_latency_ms:
                latency = self._latency.setdefault(name, _Latency())
                latency.add(started, status.avg_processing_latency_ms / 1000)
        for name, followed in self._channels.items():
            self._reschedule(name, followed.committed, started)
        # For bench/latency.py: when the poll that saw a commit went out.
        self._log.debug("status_polled", started=started, progressed=progressed)
        return progressed

    def _reschedule(self, channel: str, committed: int | None, polled_at: float) -> None:
        """Drop what is known committed; set when to look at the channel's head again."""
        queue = self._expected.get(channel)
        while queue and committed is not None and queue[0].last_offset <= committed:
            queue.popleft()
        if not queue or queue[0].check_at > polled_at:
            return
        head = queue[0]
        first_look = head.acked_at + self._first_look_s(channel)
        if first_look > polled_at:
            # Became the head before it is due (or the latency grew): look when it is.
            head.check_at = min(first_look, polled_at + self.max_interval_s)
            return
        latency = self._latency.get(channel)
        grace = GRACE * (latency.usual_s if latency is not None else 0.0)
        wait = max(self.resolution_s, LATE_SHARE * (polled_at - first_look - grace))
        head.check_at = polled_at + min(wait, self.max_interval_s)

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        for table in {c.table for c in self._channels.values()}:
            self._metrics.retries.labels(table, reason).inc()
        self._log.warning(
            "request_retried", call="bulk_channel_status", reason=reason, attempt=attempt
        )
