"""The in-flight window both sinks keep: items sent and not yet known committed, oldest first.

A sink waits for room before it sends, and for the window to empty before it finishes; every
change wakes whoever waits, so nothing polls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, TypeVar

import anyio

T = TypeVar("T")


class Pulse:
    """Wakes every current waiter each time it fires; later waiters wait for the next firing."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    async def wait(self) -> None:
        """Until the next `fire`."""
        event = self._event
        await event.wait()

    def fire(self) -> None:
        """Wake everyone waiting now."""
        self._event.set()
        self._event = anyio.Event()


class InflightWindow(Generic[T]):
    """At most `limit` items in flight, in the order they were sent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: deque[T] = deque()
        self._changed = Pulse()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items)

    def __getitem__(self, index: int) -> T:
        return self._items[index]

    def __setitem__(self, index: int, item: T) -> None:
        self._items[index] = item

    def append(self, item: T) -> None:
        """`item` is sent (or about to be)."""
        self._items.append(item)
        self._changed.fire()

    def popleft(self) -> T:
        """The oldest item is done."""
        item = self._items.popleft()
        self._changed.fire()
        return item

    async def wait_room(self) -> None:
        """Until fewer than `limit` items are in flight."""
        while len(self._items) >= self.limit:
            await self._changed.wait()

    async def wait_any(self) -> None:
        """Until at least one item is in flight."""
        while not self._items:
            await self._changed.wait()

    async def wait_empty(self) -> None:
        """Until every item is done."""
        while self._items:
            await self._changed.wait()
