"""The Source seam: a producer pushes envelopes into a bounded `Send` until its input ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from streamd.clock import Clock
from streamd.rows import Envelope


class Send(Protocol):
    """Where a source puts its envelopes (the daemon's router; in tests, a memory stream)."""

    async def send(self, item: Envelope, /) -> None:
        """Hand over one envelope; waits while delivery is behind (backpressure).

        Raises `anyio.BrokenResourceError` once nothing will take rows any more: a clean stop.
        """
        ...


def _nothing() -> None:
    return None


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a running source may touch.

    `send` is bounded: when delivery is slow, `await send.send(...)` waits, and that wait *is* the
    backpressure. `sequences` hands out blocks of sequence numbers per producer, made durable
    before they are handed out, so event ids never repeat across restarts (even after SIGKILL).
    `started` is called by a source once the objects it runs on exist (its producer tasks): they
    live as long as the run, so the daemon may exempt them from cyclic garbage collection.
    """

    send: Send
    clock: Clock
    sequences: SequenceAllocator
    started: Callable[[], None] = _nothing


class SequenceAllocator(Protocol):
    """Durable hi/lo allocator of per-producer sequence numbers."""

    async def reserve(self, producer: str) -> range:
        """The next block of unused sequence numbers for `producer`; durable before it returns."""
        ...


class Source(Protocol):
    """A producer of rows.

    `run` pushes envelopes into `ctx.send` and returns when its input is exhausted. Cancellation
    means stop now. A source never buffers beyond the stream and never imports `streamd.snowflake`.
    """

    name: str

    async def run(self, ctx: SourceContext) -> None:
        """Produce until the input ends or the task is cancelled."""
        ...
