"""PUBACKs of the MQTT source: in arrival order, only once a message's rows are durable, and no
second copy of a message the broker redelivers after a reconnect.

Why the redelivery rule is safe: MQTT 3.1.1 §4.4 has the broker resend every unacknowledged
QoS 1 PUBLISH of a persistent session on reconnect, with its original packet identifier and the
DUP flag set. A message whose rows this process already handed to the pipeline before the
connection dropped is recognised by (topic, packet id, payload digest) among the messages still
unacknowledged when the old connection ended, and only if DUP is set (a packet id is never reused
while its message is unacknowledged, and a new message never carries DUP). Such a redelivery
produces no rows: its PUBACK goes out, in its turn, once the first copy's rows are durable.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio


def digest(payload: bytes) -> bytes:
    """A short fingerprint of a payload (tells a redelivery from another message)."""
    return hashlib.blake2b(payload, digest_size=16).digest()


@dataclass(slots=True, eq=False)
class Pending:
    """One received message waiting for its rows to be durable, then for its PUBACK."""

    mid: int
    qos: int
    remaining: int
    topic: str
    digest: bytes
    queue: AckQueue | None = None
    """The connection whose PUBACK it waits for (moves to the new one on a redelivery)."""
    abandoned: bool = False
    """Stopped while its rows were being sent: some never reach the pipeline, so no PUBACK."""

    def row_done(self) -> None:
        self.remaining -= 1
        if self.queue is not None:
            self.queue.flush()


class AckQueue:
    """PUBACKs of one connection, sent in arrival order once each message's rows are durable.

    `carried` are the messages the previous connection left unacknowledged; a redelivery of one
    of them is matched by `redelivered` instead of producing rows again.
    """

    def __init__(self, send_ack: Callable[[int, int], object], carried: list[Pending]) -> None:
        self._send_ack = send_ack
        self._pending: deque[Pending] = deque()
        self._carried = {(p.topic, p.mid, p.digest): p for p in carried}
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self.closed = False
        self.duplicates = 0
        """Redelivered messages recognised (their rows were not produced twice)."""
        self._progress: anyio.Event | None = None

    def add(self, mid: int, qos: int, rows: int, topic: str, payload: bytes) -> Pending:
        """Track one received message that produced `rows` rows (0: ack it in its turn)."""
        entry = Pending(mid, qos, rows, topic, digest(payload), self)
        self._pending.append(entry)
        self.flush()
        return entry

    def redelivered(self, mid: int, qos: int, topic: str, payload: bytes, dup: bool) -> bool:
        """True (and tracked for its PUBACK) if this is a redelivery of a carried message."""
        if not dup:
            return False
        entry = self._carried.pop((topic, mid, digest(payload)), None)
        if entry is None:
            return False
        entry.qos, entry.queue = qos, self
        self._pending.append(entry)
        self.duplicates += 1
        self.flush()
        return True

    def row_done(self, entry: Pending) -> None:
        """One row of `entry` is durable; callable from any thread."""
        if threading.get_ident() == self._thread:
            entry.row_done()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(entry.row_done)

    @property
    def unacked(self) -> int:
        """Messages received and not yet acked."""
        return len(self._pending)

    async def settled(self) -> None:
        """Wait until every PUBACK that can still go out has gone out."""
        while self._pending and not self._pending[0].abandoned:
            self._progress = anyio.Event()
            await self._progress.wait()

    def close(self) -> list[Pending]:
        """Stop acking (the connection is gone); returns its unacknowledged messages."""
        self.closed = True
        for entry in self._pending:
            entry.queue = None  # a later row ack must not flush a dead connection
        return list(self._pending)

    def flush(self) -> None:
        """Send the PUBACKs that are due, in arrival order."""
        while self._pending and self._pending[0].remaining <= 0:
            entry = self._pending.popleft()
            if not self.closed and entry.qos > 0:
                self._send_ack(entry.mid, entry.qos)
        if self._progress is not None:
            self._progress.set()
