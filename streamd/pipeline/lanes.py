"""One bounded lane per table: the buffer between sources and that table's batcher."""

from __future__ import annotations

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from streamd.rows import Row


class Lane:
    """A bounded memory stream of rows for one table; full means sources wait."""

    def __init__(self, table: str, capacity: int) -> None:
        self.table = table
        self.capacity = capacity
        self.send, self.receive = anyio.create_memory_object_stream[Row](capacity)

    def __repr__(self) -> str:
        return f"<Lane {self.table} {self.depth}/{self.capacity}>"

    @property
    def depth(self) -> int:
        """Rows currently buffered."""
        return self.send.statistics().current_buffer_used

    @property
    def producers_waiting(self) -> int:
        """Senders blocked because the lane is full (backpressure in action)."""
        return self.send.statistics().tasks_waiting_send


def open_lanes(tables: list[str], capacity: int) -> dict[str, Lane]:
    """A lane per table."""
    return {table: Lane(table, capacity) for table in tables}


__all__ = ["Lane", "MemoryObjectReceiveStream", "MemoryObjectSendStream", "open_lanes"]
