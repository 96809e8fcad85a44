"""Fakes shipped with the package for tests and benchmarks: clock, sequences, a finite source."""

from __future__ import annotations

import math
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import Clock
from streamd.rows import Envelope, Row
from streamd.sources.base import Source, SourceContext


class ManualClock:
    """A clock that moves only when told to; `sleep` wakes when `advance` passes its deadline."""

    def __init__(self, start_monotonic: float = 0.0, start_wall: float = 1_763_900_000.0) -> None:
        self._mono = start_monotonic
        self._wall_offset = start_wall - start_monotonic
        self._waiters: list[tuple[float, anyio.Event]] = []

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._mono + self._wall_offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        self._waiters.append((self._mono + seconds, event))
        await event.wait()

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting on this clock."""
        return len(self._waiters)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._mono += seconds
        due = [w for w in self._waiters if w[0] <= self._mono]
        self._waiters = [w for w in self._waiters if w[0] > self._mono]
        for _, event in due:
            event.set()


class MemorySequences:
    """Sequence allocator that keeps its high marks in memory (for tests)."""

    def __init__(self, block: int = 1000, start: dict[str, int] | None = None) -> None:
        self.block = block
        self.next: dict[str, int] = dict(start or {})

    async def reserve(self, producer: str) -> range:
        first = self.next.get(producer, 0)
        self.next[producer] = first + self.block
        return range(first, first + self.block)


class ListSource:
    """A finite source that pushes pre-built rows for one table as fast as the pipeline takes them."""

    kind = "list"

    def __init__(self, name: str, table: str, rows: list[Row]) -> None:
        self.name = name
        self.table = table
        self.rows = rows

    async def run(self, ctx: SourceContext) -> None:
        """Send every row, then return (end of input)."""
        for row in self.rows:
            await ctx.send.send(Envelope(self.table, row))


def start_standin_process(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`streamd standin serve` in a process of its own (port 0); returns it and its URL."""
    proc = subprocess.Popen(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "streamd", "standin", "serve", "--data-dir", str(data_dir), *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        found = re.search(r"listening on (https?://\S+)", line)
        if found:
            return proc, found.group(1)
    proc.wait(timeout=10)
    raise RuntimeError(f"stand-in process exited with {proc.returncode} before listening")


def standin_query(
    url: str, statement: str, *, ca_file: Path | None = None
) -> list[list[str | None]]:
    """Rows of one statement through a running stand-in's SQL API (no JWT check configured).

    `ca_file`: the CA of a stand-in serving HTTPS with its own CA (`Standin.ca_file`).
    """
    verify = True if ca_file is None else ssl.create_default_context(cafile=str(ca_file))
    response = httpx.post(
        f"{url}/api/v2/statements",
        json={"statement": statement},
        headers={"Authorization": "Bearer test", "Accept": "application/json"},
        timeout=60,
        verify=verify,
    )
    response.raise_for_status()
    rows: list[list[str | None]] = response.json()["data"]
    return rows


def sensor_rows(n: int) -> list[Row]:
    """`n` rows shaped like the manufacturing sensor rows (12 columns, nested payload), for benches."""
    start = datetime(2026, 11, 23, tzinfo=UTC).replace(tzinfo=None)
    rows = []
    for i in range(n):
        ts = (start + timedelta(milliseconds=i)).isoformat(timespec="microseconds")
        row = {
            "EVENT_ID": f"sensor-EQ-{i % 20 + 1:04d}:{i}",
            "EVENT_TIMESTAMP": ts,
            "EQUIPMENT_ID": f"EQ-{i % 20 + 1:04d}",
            "EQUIPMENT_TYPE": "CNC_MACHINE",
            "LINE_ID": f"LINE-0{i % 4 + 1}",
            "TEMPERATURE": 71.5 + (i % 97) / 10,
            "PRESSURE": 101.3 + (i % 13) / 7,
            "VIBRATION": 0.42 + (i % 11) / 100,
            "SPEED": 1500.0 + i % 50,
            "STATUS": "RUNNING",
            "IS_ANOMALY": i % 100 == 0,
        }
        row["RAW_PAYLOAD"] = {k.lower(): v for k, v in row.items()}
        rows.append(row)
    return rows


@asynccontextmanager
async def running_source(
    source: Source,
    clock: Clock,
    sequences: MemorySequences | None = None,
    capacity: float = math.inf,
) -> AsyncIterator[MemoryObjectReceiveStream[Envelope]]:
    """Run `source` in the background into a stream the caller reads; cancel it when the block ends."""
    send, receive = anyio.create_memory_object_stream[Envelope](capacity)
    ctx = SourceContext(send=send, clock=clock, sequences=sequences or MemorySequences())
    with send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run, ctx)
            yield receive
            tg.cancel_scope.cancel()


async def settle(clock: ManualClock, producers: int) -> None:
    """Let producers run until every one of them is asleep on the manual clock again."""
    for _ in range(1_000_000):
        await anyio.lowlevel.checkpoint()
        if clock.sleepers == producers:
            return
    raise AssertionError(f"only {clock.sleepers} of {producers} producers went back to sleep")


def drain(receive: MemoryObjectReceiveStream[Envelope]) -> list[Envelope]:
    """Everything already in the stream, without waiting."""
    out: list[Envelope] = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except anyio.WouldBlock:
            return out
