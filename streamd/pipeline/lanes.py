"""Bounded lanes: the buffer between sources and a channel's batcher; one per table and shard."""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from streamd.rows import Envelope


class Lane:
    """A bounded memory stream of rows for one channel of a table; full means sources wait."""

    def __init__(self, table: str, capacity: int, shard: int = 0, shards: int = 1) -> None:
        self.table = table
        self.shard = shard
        self.name = table if shards == 1 else f"{table}#{shard}"
        self.capacity = capacity
        self.send, self.receive = anyio.create_memory_object_stream[Envelope](capacity)

    def __repr__(self) -> str:
        return f"<Lane {self.name} {self.depth}/{self.capacity}>"

    @property
    def depth(self) -> int:
        """Rows currently buffered."""
        return self.send.statistics().current_buffer_used

    @property
    def producers_waiting(self) -> int:
        """Senders blocked because the lane is full (backpressure in action)."""
        return self.send.statistics().tasks_waiting_send


def open_lanes(tables: list[str], capacity: int, shards: int = 1) -> dict[str, Lane]:
    """`shards` lanes per table, keyed by lane name (the table itself when there is one)."""
    lanes = [Lane(table, capacity, shard, shards) for table in tables for shard in range(shards)]
    return {lane.name: lane for lane in lanes}


__all__ = ["Lane", "MemoryObjectReceiveStream", "MemoryObjectSendStream", "open_lanes"]
