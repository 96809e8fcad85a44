"""Cut a lane's rows into append-sized batches: by row count, by bytes, and by age (linger).

Each row is encoded to NDJSON exactly once, here. The policy is pure (`BatchPolicy`); the async
step (`Batcher`) drives it with the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import anyio
import orjson
from anyio.abc import ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import Clock
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
    """Reads rows from a lane and sends `Batch`es downstream, in order, honouring the policy."""

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
        self._has_rows = anyio.Event()
        self._send_lock = anyio.Lock()

    def __repr__(self) -> str:
        return f"<Batcher {self.table} pending={len(self._lines)} rows/{self._bytes} bytes>"

    async def run(self, rows: MemoryObjectReceiveStream[Row], out: ObjectSendStream[Batch]) -> None:
        """Batch until `rows` ends, then flush what is left and close `out`."""
        async with out, anyio.create_task_group() as tg:
            tg.start_soon(self._linger, out)
            async with rows:
                async for row in rows:
                    await self._add(row, out)
                    # Drain whatever else is already queued without an await per row.
                    while True:
                        try:
                            row = rows.receive_nowait()
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                        await self._add(row, out)
            await self._flush(out)
            tg.cancel_scope.cancel()

    async def _add(self, row: Row, out: ObjectSendStream[Batch]) -> None:
        line = orjson.dumps(row)
        if len(line) + 1 > self.policy.max_bytes:
            await self._on_oversize(self.table, row, len(line))
            return
        if not self.policy.fits(len(self._lines), self._bytes, len(line)):
            await self._flush(out)
        if not self._lines:
            self._first_at = self._clock.monotonic()
            self._has_rows.set()
        self._lines.append(line)
        self._bytes += len(line) + 1
        if self.policy.is_full(len(self._lines), self._bytes):
            await self._flush(out)

    async def _flush(self, out: ObjectSendStream[Batch]) -> None:
        if not self._lines:
            return
        # Take the rows synchronously so a concurrent flush can never send them twice; the lock
        # keeps batches in the order they were cut while a full downstream makes us wait.
        lines, first_at = self._lines, self._first_at
        self._lines, self._bytes = [], 0
        self._has_rows = anyio.Event()
        lines.append(b"")
        batch = Batch(
            table=self.table,
            body=b"\n".join(lines),
            rows=len(lines) - 1,
            first_offset=0,
            last_offset=0,
            oldest_event_monotonic=first_at,
        )
        async with self._send_lock:
            await out.send(batch)

    async def _linger(self, out: ObjectSendStream[Batch]) -> None:
        while True:
            has_rows = self._has_rows
            await has_rows.wait()
            first_at = self._first_at
            await self._clock.sleep(first_at + self.policy.linger_s - self._clock.monotonic())
            # Only flush the batch we were timing; a size flush may have replaced it meanwhile.
            if self._has_rows is has_rows and self._lines:
                await self._flush(out)
