"""What a check gets besides SQL and the clock: config, watched databases and the daemon's own state."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streamd.reconciler.config import ReconcilerConfig


class ErrorHistory:
    """Each channel's Snowflake error count over time, so growth within a window can be judged."""

    def __init__(self) -> None:
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def growth(self, channel: str, now: float, count: int, window_s: float) -> int:
        """Record `count` at `now`; how much it grew since the oldest sample inside `window_s`.

        A count that went down (the channel was reopened and Snowflake restarted counting) starts
        the history over.
        """
        samples = self._samples.setdefault(channel, deque())
        if samples and count < samples[-1][1]:
            samples.clear()
        samples.append((now, count))
        # Keep one sample at or before the window start as the baseline.
        while len(samples) > 1 and samples[1][0] <= now - window_s:
            samples.popleft()
        return count - samples[0][1]


class TaskResumes:
    """When the reconciler saw a task go from suspended to started: a task just resumed has not
    had time to run, and SHOW TASKS says when a task was suspended but not when it was resumed."""

    def __init__(self) -> None:
        self._suspended: set[str] = set()
        self._resumed: dict[str, float] = {}

    def observe(self, task: str, suspended: bool, now: float) -> float | None:
        """Record the task's state; the wall time it was seen resumed, if it was."""
        if suspended:
            self._suspended.add(task)
            self._resumed.pop(task, None)
        elif task in self._suspended:
            self._suspended.discard(task)
            self._resumed[task] = now
        return self._resumed.get(task)


@dataclass
class CheckContext:
    """Inputs every check may read; the loop builds one per daemon and refreshes `channels`."""

    config: ReconcilerConfig
    databases: list[str]
    """Databases whose streams, tasks and dynamic tables are watched."""
    channels: Callable[[], list[dict[str, Any]]] = list
    """The daemon's channel snapshots (`ChannelWriter.snapshot()`)."""
    produced_at: Callable[[str], tuple[float, float] | None] = lambda _table: None
    """Wall times of the first and the newest event produced for a landing table in this run;
    None while it has produced nothing."""
    errors: ErrorHistory = field(default_factory=ErrorHistory)
    resumes: TaskResumes = field(default_factory=TaskResumes)
