"""Cut a lane's rows into append-sized batches: by row count, by bytes, and by age (linger).

Each row is encoded to NDJSON exactly once, here. The policy is pure (`BatchPolicy`); the async
step (`Batcher`) drives it with the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import Clock, wait_event
from streamd.rows import Batch, Row


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """When a batch is cut: `max_rows` rows, `max_bytes` NDJSON bytes, or `linger_s` after its first row."""

    max_rows: int
    max_bytes: int
    linger_s: float

    def fits(self, rows: int, nbytes: int, row_bytes: int) -> bool:
        """Whether one more row of `row_bytes` (plus its newline) fits in the current batch."""
        return rows < self.max_rows and nbytes + row_bytes + 1 <= self.max_bytes

    def is_full(self, rows: int, nbytes: int) -> bool:
        """Whether the batch should go now because no further row can join it."""
        return rows >= self.max_rows or nbytes >= self.max_bytes

    def is_due(self, first_row_at: float, now: float) -> bool:
        """Whether the oldest row has waited long enough."""
        return now - first_row_at >= self.linger_s


class OversizeHook(Protocol):
    """What to do with a row too large for any request (it must not vanish)."""

    async def __call__(self, table: str, row: Row, size: int) -> None:
        """Take the row out of the stream, durably, with a reason."""
        ...


class Batcher:
    """Accumulates a lane's rows into one pending batch that the writer takes when it is ready.

    The writer pulls (`next_batch`), so a batch is cut when the writer can send it: while an
    append is in flight the pending batch keeps growing up to the policy's limits, instead of being
    cut at linger and then waiting, already small, behind the request. When the pending batch is
    full, `fill` stops reading the lane, and backpressure reaches the sources.
    """

    def __init__(
        self,
        table: str,
        policy: BatchPolicy,
        clock: Clock,
        *,
        on_oversize: OversizeHook,
    ) -> None:
        self.table = table
        self.policy = policy
        self._clock = clock
        self._on_oversize = on_oversize
        self._lines: list[bytes] = []
        self._bytes = 0
        self._first_at = 0.0
        self._ended = False
        self._changed = anyio.Event()
        self._taken = anyio.Event()

    def __repr__(self) -> str:
        return f"<Batcher {self.table} pending={len(self._lines)} rows/{self._bytes} bytes>"

    @property
    def pending_rows(self) -> int:
        """Rows encoded and waiting in the pending batch."""
        return len(self._lines)

    async def fill(self, rows: MemoryObjectReceiveStream[Row]) -> None:
        """Read the lane until it ends; `next_batch` then returns what is left, then None."""
        async with rows:
            async for row in rows:
                await self._add(row)
                # Drain whatever else is already queued without an await per row.
                while True:
                    try:
                        row = rows.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    await self._add(row)
        self._ended = True
        self._notify()

    async def next_batch(self) -> Batch | None:
        """The next batch once it is full or due (linger), or None when the lane has ended."""
        while True:
            changed = self._changed
            if self._lines:
                now = self._clock.monotonic()
                if (
                    self._ended
                    or self.policy.is_full(len(self._lines), self._bytes)
                    or self.policy.is_due(self._first_at, now)
                ):
                    return self._take()
                await wait_event(self._clock, changed, self._first_at + self.policy.linger_s - now)
            elif self._ended:
                return None
            else:
                await changed.wait()

    async def _add(self, row: Row) -> None:
        line = orjson.dumps(row)
        if len(line) + 1 > self.policy.max_bytes:
            await self._on_oversize(self.table, row, len(line))
            return
        while not self.policy.fits(len(self._lines), self._bytes, len(line)):
            taken = self._taken
            self._notify()
            await taken.wait()
        if not self._lines:
            self._first_at = self._clock.monotonic()
            self._notify()
        self._lines.append(line)
        self._bytes += len(line) + 1
        if self.policy.is_full(len(self._lines), self._bytes):
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _take(self) -> Batch:
        lines, first_at = self._lines, self._first_at
        self._lines, self._bytes = [], 0
        self._taken.set()
        self._taken = anyio.Event()
        lines.append(b"")
        return Batch(
            table=self.table,
            body=b"\n".join(lines),
            rows=len(lines) - 1,
            first_offset=0,
            last_offset=0,
            oldest_event_monotonic=first_at,
        )
