"""The group-commit scheduler: batches wait their commit delay in memory, then commit per database.

The delay comes from the fault plan (commit delay plus jitter, §2.18) and is clamped per channel
so that a channel's batches still commit in the order they were appended (§2.6). While the plan is
frozen nothing commits. The scheduler sleeps on an event until the next deadline; appends, freeze,
release and delay changes wake it (the last three may come from another thread).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio

from streamd.standin.faults import FaultPlan
from streamd.standin.storage.database import WriteExecutor
from streamd.standin.streaming.commit import Commit, commit_batches
from streamd.standin.streaming.ids import ChannelId
from streamd.standin.streaming.timing import BatchTiming, TimingLog


@dataclass(slots=True)
class Pending:
    """A batch waiting for its commit time."""

    channel: ChannelId
    commit: Commit
    due: float
    timing: BatchTiming | None = None
    """Diagnostics (`timing.py`): only with a timing log."""


class CommitScheduler:
    """Queue of pending batches and the task that commits them when due."""

    def __init__(
        self,
        write: WriteExecutor,
        faults: FaultPlan,
        default_delay_s: float,
        on_settled: Callable[[Pending], None],
        timing: TimingLog | None = None,
    ) -> None:
        self._write = write
        self._timing = timing
        self._faults = faults
        self._default_delay_s = default_delay_s
        self._on_settled = on_settled
        self._queue: list[Pending] = []
        self._last_due: dict[ChannelId, float] = {}
        self._wake = anyio.Event()
        self._deadline = float("inf")
        """What the running scheduler sleeps until; earlier arrivals wake it."""

    def schedule(self, cid: ChannelId, commit: Commit, timing: BatchTiming | None = None) -> None:
        """Queue a batch for commit after the (jittered) commit delay."""
        due = time.monotonic() + self._faults.commit_delay(self._default_delay_s)
        due = max(due, self._last_due.get(cid, 0.0))  # jitter never reorders a channel
        self._last_due[cid] = due
        if timing is not None:
            timing.mark_queued(commit.rows.parsed, due)
        self._queue.append(Pending(cid, commit, due, timing))
        if due < self._deadline:
            self._wake.set()

    def discard(self, cid: ChannelId) -> None:
        """Drop the channel's pending batches (reopen, drop, invalidation)."""
        kept: list[Pending] = []
        for p in self._queue:
            if p.channel == cid:
                self._on_settled(p)
                self._record(p, "discarded", None)
            else:
                kept.append(p)
        self._queue = kept
        self._last_due.pop(cid, None)

    async def run(self) -> None:
        """Commit batches when due, forever; cancel to stop."""
        loop = asyncio.get_running_loop()
        notify: Callable[[], Any] = functools.partial(loop.call_soon_threadsafe, self._poke)
        self._faults.subscribe(notify)
        try:
            while True:
                if self._faults.frozen or not self._queue:
                    await self._sleep(None)
                    continue
                deadline = min(p.due for p in self._queue)
                now = time.monotonic()
                if deadline > now:
                    await self._sleep(deadline)
                    continue
                await self._commit_due(now)
        finally:
            self._faults.unsubscribe(notify)

    async def flush(self) -> None:
        """Commit everything pending now, frozen or not (graceful shutdown, tests)."""
        while self._queue:
            await self._commit_due(float("inf"))

    def _poke(self) -> None:
        self._wake.set()

    async def _sleep(self, deadline: float | None) -> None:
        self._deadline = float("inf") if deadline is None else deadline
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        with anyio.move_on_after(timeout):
            await self._wake.wait()
        self._wake = anyio.Event()
        self._deadline = float("-inf")  # awake: nothing needs to wake it

    async def _commit_due(self, now: float) -> None:
        due = [p for p in self._queue if p.due <= now]
        self._queue = [p for p in self._queue if p.due > now]
        by_db: dict[str, list[Pending]] = {}
        for p in due:
            by_db.setdefault(p.channel.db, []).append(p)
        for db, group in by_db.items():
            started = time.monotonic()
            try:
                commits = [p.commit for p in group]
                await self._write(functools.partial(commit_batches, db=db, commits=commits))
            finally:
                for p in group:
                    self._on_settled(p)
                    self._record(p, "committed", started)

    def _record(self, pending: Pending, outcome: str, started: float | None) -> None:
        if self._timing is not None and pending.timing is not None:
            self._timing.settled(pending.timing, outcome, started)
