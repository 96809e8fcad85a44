"""A lane's rows go into its spool (durable, numbered) and come out as append-sized batches.

Each row is encoded to NDJSON exactly once, here, and its spool sequence number is its offset
token. Batches are cut by row count, bytes and age (linger); the policy is pure (`BatchPolicy`),
the async step (`Batcher`) drives it with the injected clock. The batcher is the sinks'
`BatchSource`: a sink takes, rereads and releases rows through it and never sees the spool.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import orjson

from streamd.clock import Clock, wait_event
from streamd.rows import Batch, Envelope, Row
from streamd.spool import LaneSpool
from streamd.spool.chunk import RowRun


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


class LaneReader(Protocol):
    """What `fill` reads: a lane's receiving end (an anyio memory object stream fits too)."""

    async def receive(self) -> Envelope:
        """The next row, waiting for one; `anyio.EndOfStream` once the lane has ended."""
        ...

    def receive_nowait(self) -> Envelope:
        """The next row if one is buffered, else `anyio.WouldBlock`."""
        ...

    async def aclose(self) -> None:
        """Stop reading."""
        ...


SMALL_APPEND_ROWS = 64
COALESCE_AFTER_SMALL_APPENDS = 4
"""After this many small spool appends in a row, `fill` waits COALESCE_S before appending."""
COALESCE_S = 0.002
TAIL_CACHE_BATCHES = 2
"""The batcher keeps the NDJSON of its newest spool appends in memory, up to this many batches'
bytes, so a writer keeping up cuts batches without reading back what was just written. Replays
after a reopen or restart, and a writer fallen further behind, read the spool."""
APPEND_MAX_ROWS = 1024
"""Rows `fill` spools in one append at most. Until the append each row is its own `orjson.dumps`
result, which orjson keeps in a buffer of at least 4 KiB whatever the row's size, so taking a
whole backlog in one append would hold megabytes at once (and glibc keeps them resident)."""
MAX_APPEND_TIMES = 4096
"""Spool appends whose time linger keeps; past this, every other one is let go (its rows take the
earlier neighbour's time: a batch may be cut sooner, never later), so a writer stalled for hours
holds a bounded list whose resolution coarsens with the backlog."""
REREAD_MAX_BYTES = 1 << 40
"""No byte limit on a reread: a range is read back exactly as it was cut."""


class OversizeHook(Protocol):
    """What to do with a row too large for any request (it must not vanish)."""

    async def __call__(self, table: str, row: Row, size: int, position: str | None) -> None:
        """Take the row out of the stream, durably, with a reason and where it came from."""
        ...


class Batcher:
    """Feeds a lane into its spool and hands the writer batches read back from it.

    The writer pulls (`next_batch`), so a batch is cut when the writer can send it: while an
    append is in flight, unsent rows keep accumulating in the spool up to the policy's limits.
    When the spool is full (when_full = "block"), `fill` stops reading the lane and backpressure
    reaches the sources. After a restart, `replay_from(committed + 1)` replays what the spool holds.
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
        self._spool = spool
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
        # (first seq, rows, NDJSON) of recent spool appends, oldest first, contiguous; bounded by
        # bytes. The same shape as the spool's chunks, so both are cut into batches alike.
        self._tail: deque[tuple[int, int, bytes]] = deque()
        self._tail_bytes = 0
        self._append_rows = min(policy.max_rows, APPEND_MAX_ROWS)

    def __repr__(self) -> str:
        return f"<Batcher {self.table} cursor={self._cursor} unsent={self.unsent_rows}>"

    @property
    def unsent_rows(self) -> int:
        """Rows in the spool not yet handed to the writer."""
        return max(0, self._spool.next_seq - self._cursor)

    @property
    def committed(self) -> int:
        """The highest offset released as committed (0: none)."""
        return self._spool.committed

    @property
    def may_drop_unreleased(self) -> bool:
        """Whether the spool may drop rows not yet released (when_full = "drop_oldest")."""
        return self._spool.config.when_full == "drop_oldest"

    def stats(self) -> dict[str, Any]:
        """The spool's state, for `streamd inspect`."""
        return self._spool.stats()

    async def release(self, upto: int) -> None:
        """Rows up to `upto` are committed: the spool records it and frees their segments."""
        await self._spool.commit(upto)

    async def reread(self, first: int, last: int) -> list[Batch]:
        """Rows `first`–`last` read back from the spool, one batch per contiguous run."""
        runs: list[Batch] = []
        seq = first
        while seq <= last:
            run = await self._spool.read_run(seq, last - seq + 1, REREAD_MAX_BYTES)
            if not run.rows or run.first > last:
                break
            if run.first > seq:
                seq = run.first  # rows before it are gone: read from where the spool resumes
                continue
            runs.append(Batch(self.table, run.body(), run.rows, run.first, run.last))
            seq = run.last + 1
        return runs

    def replay_from(self, seq: int) -> None:
        """Hand out rows from `seq` on (everything before is committed); replays are due at once."""
        self._cursor = max(seq, self._spool.first_seq)
        self._chunks.clear()
        self._unsent_bytes = 0
        if self._spool.next_seq > self._cursor:
            self._chunks.append((self._cursor, -math.inf))
            self._unsent_bytes = self.policy.max_bytes  # unknown size: treat as a full batch
        self._notify()

    async def fill(self, envelopes: LaneReader) -> None:
        """Spool the lane's rows until it ends; `next_batch` then returns the rest, then None.

        Each row's `ack` is called only after the spool append reached its durability.
        """
        small_appends = 0
        try:
            while True:
                try:
                    envelope = await envelopes.receive()
                except anyio.EndOfStream:
                    break
                if self._taker_waiting or small_appends < COALESCE_AFTER_SMALL_APPENDS:
                    # One scheduler turn lets the router move what it has queued into the lane.
                    await anyio.lowlevel.checkpoint()
                else:
                    # Rows trickle in one per turn and nobody waits for them: a short group-commit
                    # window turns hundreds of one-row spool appends into one (a row's ack waits
                    # at most this long).
                    await self._clock.sleep(COALESCE_S)
                lines: list[bytes] = []
                acks: list[AckHook | None] = []
                nbytes = await self._gather(envelope, envelopes, lines, acks)
                if lines:
                    small_appends = small_appends + 1 if len(lines) < SMALL_APPEND_ROWS else 0
                    await self._spool_lines(lines, acks, nbytes)
        finally:
            await envelopes.aclose()
        self._ended = True
        self._notify()

    async def _gather(
        self,
        envelope: Envelope,
        envelopes: LaneReader,
        lines: list[bytes],
        acks: list[AckHook | None],
    ) -> int:
        """Encode `envelope` and whatever else is queued, up to one append; returns its bytes."""
        nbytes = 0
        while True:
            size = self._encode(envelope, lines, acks)
            if size < 0:
                await self._oversize(envelope)
            else:
                nbytes += size
            if len(lines) >= self._append_rows or nbytes >= self.policy.max_bytes:
                return nbytes
            try:
                envelope = envelopes.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                return nbytes

    async def _spool_lines(
        self, lines: list[bytes], acks: list[AckHook | None], nbytes: int
    ) -> None:
        """Append `lines` to the spool, wake the taker if its decision can change, ack what is durable."""
        was_empty = self._spool.next_seq <= self._cursor
        stored = await self._spool.append(lines)
        if len(stored):
            self._remember(stored.start, lines[: len(stored)])
            self._note_append(stored.start)
            self._unsent_bytes += nbytes
            # Wake the writer only when its decision can change: rows appeared, or a batch
            # became full. Linger it times itself.
            if was_empty or self.policy.is_full(self.unsent_rows, self._unsent_bytes):
                self._notify()
        if acks.count(None) != len(acks):  # push sources: ack what is durable
            for i, ack in enumerate(acks):
                if ack is not None:
                    # drop_newest stores a prefix; the rest were refused, never durable.
                    ack(stored[i] if i < len(stored) else None)

    def _encode(self, envelope: Envelope, lines: list[bytes], acks: list[AckHook | None]) -> int:
        """Encode one row into `lines` and return its bytes, or -1 (nothing added) if too big.

        Plain, not async: one coroutine per row was a visible cost, and only an oversize row
        needs to wait (`_oversize`).
        """
        line = orjson.dumps(envelope.row)
        if len(line) + 1 > self.policy.max_bytes:
            return -1
        lines.append(line)
        acks.append(envelope.ack)
        return len(line) + 1

    async def _oversize(self, envelope: Envelope) -> None:
        size = len(orjson.dumps(envelope.row))
        await self._on_oversize(self.table, envelope.row, size, envelope.key or None)
        if envelope.ack is not None:
            envelope.ack(None)

    async def next_batch(self) -> Batch | None:
        """The next batch once it is full or due (linger), or None when the lane has ended."""
        while True:
            changed = self._changed
            unsent = self._spool.next_seq - self._cursor
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

    def _note_append(self, first: int) -> None:
        self._chunks.append((first, self._clock.monotonic()))
        if len(self._chunks) > MAX_APPEND_TIMES:
            # The oldest stays exact (what linger measures first); every other one after it goes.
            self._chunks = deque(itertools.islice(self._chunks, 0, None, 2))

    def _remember(self, first: int, lines: list[bytes]) -> None:
        if self._unsent_bytes > TAIL_CACHE_BATCHES * self.policy.max_bytes:
            # The writer is further behind than the tail reaches (commits stalled, Snowflake slow):
            # these rows would be pushed out before it got to them, so holding (and joining) them
            # only costs memory. It reads the spool until it is back within reach.
            self._forget_tail()
            return
        if self._tail and self._tail[-1][0] + self._tail[-1][1] != first:
            self._forget_tail()  # not contiguous (rows refused in between): start afresh
        body = b"\n".join(lines) + b"\n"
        self._tail.append((first, len(lines), body))
        self._tail_bytes += len(body)
        while self._tail_bytes > TAIL_CACHE_BATCHES * self.policy.max_bytes and len(self._tail) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        self._tail_bytes -= len(self._tail.popleft()[2])

    def _forget_tail(self) -> None:
        self._tail.clear()
        self._tail_bytes = 0

    def _read_tail(self, cursor: int) -> RowRun | None:
        """The rows from `cursor` on, cut like `LaneSpool.read_run`, if the tail cache holds `cursor`."""
        while self._tail and self._tail[0][0] + self._tail[0][1] <= cursor:
            self._drop_oldest()  # wholly before the cursor: handed out already
        if not self._tail or self._tail[0][0] > cursor:
            return None
        run = RowRun(cursor, self.policy.max_rows, self.policy.max_bytes)
        for first, rows, body in self._tail:
            if not run.add(first, rows, body):
                break
        return run

    async def _read(self) -> Batch:
        run = self._read_tail(self._cursor)
        if run is None:
            run = await self._spool.read_run(
                self._cursor, self.policy.max_rows, self.policy.max_bytes
            )
        if not run.rows:
            raise RuntimeError(f"{self.table}: the spool holds no rows at {self._cursor}")
        self._cursor = run.last + 1
        oldest = self._chunks[0][1] if self._chunks else self._clock.monotonic()
        while len(self._chunks) > 1 and self._chunks[1][0] <= self._cursor:
            self._chunks.popleft()
        if self._cursor >= self._spool.next_seq:
            self._chunks.clear()
            self._unsent_bytes = 0
        else:
            # The partly read chunk keeps its time: linger stays conservative (never late).
            self._unsent_bytes = max(0, self._unsent_bytes - run.nbytes)
        return Batch(
            table=self.table,
            body=run.body(),
            rows=run.rows,
            first_offset=run.first,
            last_offset=run.last,
            oldest_event_monotonic=oldest if oldest != -math.inf else self._clock.monotonic(),
        )

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
