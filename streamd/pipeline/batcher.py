"""A lane's rows go into its spool (durable, numbered) and come out as append-sized batches.

Each row is encoded to NDJSON exactly once, here, and its spool sequence number is its offset
token. Batches are cut by row count, bytes and age (linger); the policy is pure (`BatchPolicy`),
the async step (`Batcher`) drives it with the injected clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import Clock, wait_event
from streamd.rows import Batch, Envelope, Row
from streamd.spool import LaneSpool


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


AckHook = Callable[[int | None], None]

SMALL_APPEND_ROWS = 64
COALESCE_AFTER_SMALL_APPENDS = 4
"""After this many small spool appends in a row, `fill` waits COALESCE_S before appending."""
COALESCE_S = 0.002
TAIL_CACHE_BATCHES = 2
"""The batcher keeps the lines of its newest spool appends in memory, up to this many batches' bytes,
so a writer keeping up cuts batches without reading back what was just written (~1.9 µs per row
of read, checksum and copy). Replays after a reopen or restart read the spool."""


class OversizeHook(Protocol):
    """What to do with a row too large for any request (it must not vanish)."""

    async def __call__(self, table: str, row: Row, size: int) -> None:
        """Take the row out of the stream, durably, with a reason."""
        ...


class Batcher:
    """Feeds a lane into its spool and hands the writer batches read back from it.

    The writer pulls (`next_batch`), so a batch is cut when the writer can send it: while an
    append is in flight, unsent rows keep accumulating in the spool up to the policy's limits.
    When the spool is full (when_full = "block"), `fill` stops reading the lane and backpressure
    reaches the sources. After a restart, `start_at(committed + 1)` replays what the spool holds.
    """

    def __init__(
        self,
        table: str,
        spool: LaneSpool,
        policy: BatchPolicy,
        clock: Clock,
        *,
        on_oversize: OversizeHook,
    ) -> None:
        self.table = table
        self.spool = spool
        self.policy = policy
        self._clock = clock
        self._on_oversize = on_oversize
        self._cursor = spool.next_seq
        # (first seq, monotonic time) per spool append not yet read back: the oldest is what
        # linger measures. Unsent bytes are kept as a running total, never summed per wake-up.
        self._chunks: deque[tuple[int, float]] = deque()
        self._unsent_bytes = 0
        self._ended = False
        self._taker_waiting = False
        self._changed = anyio.Event()
        # (first seq, lines) of recent spool appends, oldest first, contiguous; bounded by bytes.
        self._tail: deque[tuple[int, list[bytes]]] = deque()
        self._tail_bytes = 0

    def __repr__(self) -> str:
        return f"<Batcher {self.table} cursor={self._cursor} unsent={self.unsent_rows}>"

    @property
    def unsent_rows(self) -> int:
        """Rows in the spool not yet handed to the writer."""
        return max(0, self.spool.next_seq - self._cursor)

    def start_at(self, seq: int) -> None:
        """Hand out rows from `seq` on (everything before is committed); replays are due at once."""
        self._cursor = max(seq, self.spool.first_seq)
        self._chunks.clear()
        self._unsent_bytes = 0
        if self.spool.next_seq > self._cursor:
            self._chunks.append((self._cursor, -math.inf))
            self._unsent_bytes = self.policy.max_bytes  # unknown size: treat as a full batch
        self._notify()

    async def fill(self, envelopes: MemoryObjectReceiveStream[Envelope]) -> None:
        """Spool the lane's rows until it ends; `next_batch` then returns the rest, then None.

        Each row's `ack` is called only after the spool append reached its durability.
        """
        lines: list[bytes] = []
        acks: list[AckHook | None] = []
        nbytes = 0
        small_appends = 0
        async with envelopes:
            async for envelope in envelopes:
                nbytes = await self._encode(envelope, lines, acks, nbytes)
                if self._taker_waiting or small_appends < COALESCE_AFTER_SMALL_APPENDS:
                    # One scheduler turn lets the router move what it has queued into the lane.
                    await anyio.lowlevel.checkpoint()
                else:
                    # Rows trickle in one per turn and nobody waits for them: a short group-commit
                    # window turns hundreds of one-row spool appends into one (a row's ack waits
                    # at most this long).
                    await self._clock.sleep(COALESCE_S)
                # Take whatever else is queued without an await per row, up to one batch.
                while len(lines) < self.policy.max_rows and nbytes < self.policy.max_bytes:
                    try:
                        envelope = envelopes.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    nbytes = await self._encode(envelope, lines, acks, nbytes)
                if lines:
                    small_appends = small_appends + 1 if len(lines) < SMALL_APPEND_ROWS else 0
                    was_empty = self.spool.next_seq <= self._cursor
                    stored = await self.spool.append(lines)
                    if len(stored):
                        self._remember(stored.start, lines[: len(stored)])
                        self._chunks.append((stored.start, self._clock.monotonic()))
                        self._unsent_bytes += nbytes
                        # Wake the writer only when its decision can change: rows appeared, or
                        # a batch became full. Linger it times itself.
                        if was_empty or self.policy.is_full(self.unsent_rows, self._unsent_bytes):
                            self._notify()
                    for i, ack in enumerate(acks):
                        if ack is not None:
                            # drop_newest stores a prefix; the rest were refused, never durable.
                            ack(stored[i] if i < len(stored) else None)
                    lines, acks, nbytes = [], [], 0
        self._ended = True
        self._notify()

    async def _encode(
        self, envelope: Envelope, lines: list[bytes], acks: list[AckHook | None], nbytes: int
    ) -> int:
        line = orjson.dumps(envelope.row)
        if len(line) + 1 > self.policy.max_bytes:
            await self._on_oversize(self.table, envelope.row, len(line))
            if envelope.ack is not None:
                envelope.ack(None)
            return nbytes
        lines.append(line)
        acks.append(envelope.ack)
        return nbytes + len(line) + 1

    async def next_batch(self) -> Batch | None:
        """The next batch once it is full or due (linger), or None when the lane has ended."""
        while True:
            changed = self._changed
            unsent = self.spool.next_seq - self._cursor
            if unsent > 0:
                now = self._clock.monotonic()
                oldest = self._chunks[0][1] if self._chunks else -math.inf
                if (
                    self._ended
                    or self.policy.is_full(unsent, self._unsent_bytes)
                    or self.policy.is_due(oldest, now)
                ):
                    return await self._read()
                await wait_event(self._clock, changed, oldest + self.policy.linger_s - now)
            elif self._ended:
                return None
            else:
                self._taker_waiting = True
                try:
                    await changed.wait()
                finally:
                    self._taker_waiting = False

    def _remember(self, first: int, lines: list[bytes]) -> None:
        if self._tail and self._tail[-1][0] + len(self._tail[-1][1]) != first:
            self._forget_tail()  # not contiguous (rows refused in between): start afresh
        self._tail.append((first, lines))
        self._tail_bytes += sum(map(len, lines)) + len(lines)
        while self._tail_bytes > TAIL_CACHE_BATCHES * self.policy.max_bytes and len(self._tail) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, lines = self._tail.popleft()
        self._tail_bytes -= sum(map(len, lines)) + len(lines)

    def _forget_tail(self) -> None:
        self._tail.clear()
        self._tail_bytes = 0

    def _read_tail(self, cursor: int) -> list[bytes] | None:
        """Lines from `cursor` on, cut like `LaneSpool.read`, if the tail cache holds `cursor`."""
        while self._tail and self._tail[0][0] + len(self._tail[0][1]) <= cursor:
            self._drop_oldest()  # wholly before the cursor: handed out already
        if not self._tail or self._tail[0][0] > cursor:
            return None
        out: list[bytes] = []
        total = 0
        max_rows, max_bytes = self.policy.max_rows, self.policy.max_bytes
        for first, lines in self._tail:
            for line in lines[max(0, cursor - first) :]:
                if len(out) >= max_rows or (out and total + len(line) > max_bytes):
                    return out
                out.append(line)
                total += len(line)
        return out

    async def _read(self) -> Batch:
        cursor = self._cursor
        lines = self._read_tail(cursor)
        first = cursor
        if lines is None:
            records = await self.spool.read(cursor, self.policy.max_rows, self.policy.max_bytes)
            lines = [payload for _, payload in records]
            first = records[0][0]
        rows = len(lines)
        last = first + rows - 1
        self._cursor = last + 1
        oldest = self._chunks[0][1] if self._chunks else self._clock.monotonic()
        while len(self._chunks) > 1 and self._chunks[1][0] <= self._cursor:
            self._chunks.popleft()
        if self._cursor >= self.spool.next_seq:
            self._chunks.clear()
            self._unsent_bytes = 0
        else:
            # The partly read chunk keeps its time: linger stays conservative (never late).
            self._unsent_bytes = max(0, self._unsent_bytes - sum(map(len, lines)) - len(lines))
        lines.append(b"")
        return Batch(
            table=self.table,
            body=b"\n".join(lines),
            rows=rows,
            first_offset=first,
            last_offset=last,
            oldest_event_monotonic=oldest if oldest != -math.inf else self._clock.monotonic(),
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
