"""A diagnostic record of where each appended batch spent its time in the stand-in.

`streamd standin serve --timing-log PATH` writes one JSON line per batch that was queued for
commit, once its response went out and its commit (or discard) is done, and one per Bulk Channel
Status call once its response went out (a client's commit lag includes how long that took). Times
are `time.monotonic()`: CLOCK_MONOTONIC is system-wide on Linux, so a client on the same machine
can set them against its own clock (`bench/latency.py` does). Nothing here changes what the
protocol does; without a path, no record is made at all.

Batch fields: `kind` ("append"), `channel` (DB.SCHEMA.PIPE.CHANNEL), `start_offset_token`,
`end_offset_token`, `rows`, `received` (the append handler started), `queued` (parsed and queued
for commit), `due` (when the commit delay lets it commit), `responded` (the 200 was handed to the
server to send), `commit_started` (its group commit began), `settled` (that commit finished, or it
was discarded), `outcome` (`committed` or `discarded`). A batch whose response never went out (the
client went away) is not written. Status fields: `kind` ("status"), `pipe` (DB.SCHEMA.PIPE),
`received`, `responded`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import orjson


@dataclass(slots=True)
class BatchTiming:
    """The times of one append, filled in as it goes through the stand-in."""

    channel: str
    start_offset_token: str | None
    end_offset_token: str | None
    received: float
    rows: int = 0
    queued: float | None = None
    due: float | None = None
    responded: float | None = None
    commit_started: float | None = None
    settled: float | None = None
    outcome: str | None = None
    kind: str = "append"

    def mark_queued(self, rows: int, due: float) -> None:
        """The batch was parsed and waits for its commit at `due`."""
        self.rows = rows
        self.queued = time.monotonic()
        self.due = due


class TimingLog:
    """Appends finished `BatchTiming` records to a file, one JSON line each."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Line-buffered: one small write per batch (~10/s per channel), and readable while serving.
        self._file: IO[str] | None = path.open("a", buffering=1, encoding="utf-8")

    def begin(
        self, channel: str, start: str | None, end: str | None, received: float
    ) -> BatchTiming:
        """A record for an append whose request reached the handler at `received`."""
        return BatchTiming(channel, start, end, received)

    async def responded(self, timing: BatchTiming) -> None:
        """The response went out (a Starlette background task, run after it was sent)."""
        timing.responded = time.monotonic()
        self._write_if_done(timing)

    def settled(self, timing: BatchTiming, outcome: str, commit_started: float | None) -> None:
        """The batch's commit finished (`committed`) or it was thrown away (`discarded`)."""
        timing.commit_started = commit_started
        timing.settled = time.monotonic()
        timing.outcome = outcome
        self._write_if_done(timing)

    async def status_responded(self, pipe: str, received: float) -> None:
        """A Bulk Channel Status call that reached the handler at `received` was answered."""
        now = time.monotonic()
        self._write({"kind": "status", "pipe": pipe, "received": received, "responded": now})

    def close(self) -> None:
        """Close the file; records finishing later are dropped."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write_if_done(self, timing: BatchTiming) -> None:
        # A commit may finish before the response is sent (commit delay 0): write on the later.
        if timing.responded is None or timing.settled is None or timing.queued is None:
            return
        self._write(asdict(timing))

    def _write(self, record: dict[str, object]) -> None:
        if self._file is not None:
            self._file.write(orjson.dumps(record).decode() + "\n")
