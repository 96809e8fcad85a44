"""Bounded lanes: the buffer between sources and a channel's batcher; one per table and shard.

A lane is a bounded FIFO with one reader (the batcher) and many writers (every producer routed
to it), with a memory object stream's semantics: FIFO across writers (a new row never overtakes a
parked one), `put` waits while full, the reader sees `EndOfStream` once the writers closed and the
lane is empty, and writers get `BrokenResourceError` once the reader is gone.

It is its own class rather than an anyio stream because a full lane is the normal state of a
daemon catching up, with thousands of producers blocked on it: a writer that finds the lane full
parks one `anyio.Event` with its row, and the reader moves the oldest parked row in as it takes
one, so a blocked row costs no extra scheduler turn and no exception (bench/README.md, "Lanes").
"""

from __future__ import annotations

from collections import OrderedDict, deque

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, WouldBlock
from anyio.abc import ObjectReceiveStream
from anyio.lowlevel import checkpoint

from streamd.rows import Envelope


class Lane:
    """A bounded FIFO of rows for one channel of a table; full means sources wait."""

    def __init__(self, table: str, capacity: int, shard: int = 0, shards: int = 1) -> None:
        if capacity < 1:
            raise ValueError(f"lane capacity must be at least 1, got {capacity}")
        self.table = table
        self.shard = shard
        self.name = table if shards == 1 else f"{table}#{shard}"
        self.capacity = capacity
        self._rows: deque[Envelope] = deque()
        self._parked: OrderedDict[anyio.Event, Envelope] = OrderedDict()
        """Writers waiting for room, oldest first, each with the row it brings."""
        self._reader_waiting: anyio.Event | None = None
        self._writers_closed = False
        self._reader_closed = False
        self.receive = LaneReceiveStream(self)

    def __repr__(self) -> str:
        return f"<Lane {self.name} {self.depth}/{self.capacity}>"

    @property
    def depth(self) -> int:
        """Rows currently buffered."""
        return len(self._rows)

    @property
    def producers_waiting(self) -> int:
        """Writers blocked because the lane is full (backpressure in action)."""
        return len(self._parked)

    def offer(self, envelope: Envelope) -> bool:
        """Add `envelope` if there is room (and nobody is parked before it); False if full."""
        if self._writers_closed:
            raise ClosedResourceError
        if self._reader_closed:
            raise BrokenResourceError
        if self._parked or len(self._rows) >= self.capacity:
            return False
        self._rows.append(envelope)
        self._wake_reader()
        return True

    async def put(self, envelope: Envelope) -> None:
        """Add `envelope`, waiting while the lane is full (backpressure)."""
        if self.offer(envelope):
            return
        parked = anyio.Event()
        self._parked[parked] = envelope
        try:
            await parked.wait()
        finally:
            # Still parked means the row never entered the lane (cancelled, or the reader left).
            unsent = self._parked.pop(parked, None) is not None
        if unsent:
            raise BrokenResourceError

    def close_writers(self) -> None:
        """No more rows will come: the reader ends once the lane is empty (idempotent)."""
        self._writers_closed = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        waiting = self._reader_waiting
        if waiting is not None:
            self._reader_waiting = None
            waiting.set()

    def _take(self) -> Envelope:
        envelope = self._rows.popleft()
        if self._parked:
            # The oldest parked writer's row takes the freed place; the writer is done.
            parked, waiting_row = self._parked.popitem(last=False)
            self._rows.append(waiting_row)
            parked.set()
        return envelope

    def _close_reader(self) -> None:
        self._reader_closed = True
        self._rows.clear()
        # Parked rows stay parked: each writer wakes, finds its row unsent and raises.
        for parked in self._parked:
            parked.set()


class LaneReceiveStream(ObjectReceiveStream[Envelope]):
    """The reader's end of a lane (the batcher's), with the memory stream's methods."""

    def __init__(self, lane: Lane) -> None:
        self._lane = lane
        self._closed = False

    def receive_nowait(self) -> Envelope:
        """The oldest row; WouldBlock if none is buffered, EndOfStream once the writers closed."""
        lane = self._lane
        if self._closed:
            raise ClosedResourceError
        if lane._rows:
            return lane._take()
        if lane._writers_closed:
            raise EndOfStream
        raise WouldBlock

    async def receive(self) -> Envelope:
        """The oldest row, waiting for one; EndOfStream once the writers closed and it is empty."""
        # A checkpoint first, as anyio's own streams: a reader looping over a busy lane still
        # yields, and cancellation reaches it. Per batch, not per row (the batcher drains with
        # receive_nowait).
        await checkpoint()
        lane = self._lane
        while True:
            try:
                return self.receive_nowait()
            except WouldBlock:
                pass
            waiting = lane._reader_waiting = anyio.Event()
            await waiting.wait()

    async def aclose(self) -> None:
        """Stop reading: rows still buffered are dropped and writers get BrokenResourceError."""
        if not self._closed:
            self._closed = True
            self._lane._close_reader()


def open_lanes(tables: list[str], capacity: int, shards: int = 1) -> dict[str, Lane]:
    """`shards` lanes per table, keyed by lane name (the table itself when there is one)."""
    lanes = [Lane(table, capacity, shard, shards) for table in tables for shard in range(shards)]
    return {lane.name: lane for lane in lanes}


__all__ = ["Lane", "LaneReceiveStream", "open_lanes"]
