"""The Source seam: a producer pushes envelopes into a bounded stream until its input ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from anyio.abc import ObjectSendStream

from streamd.clock import Clock
from streamd.rows import Envelope


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a running source may touch.

    `send` is bounded: when delivery is slow, `await send.send(...)` waits, and that wait *is* the
    backpressure. `sequences` hands out blocks of sequence numbers per producer, made durable
    before they are handed out, so event ids never repeat across restarts (even after SIGKILL).
    """

    send: ObjectSendStream[Envelope]
    clock: Clock
    sequences: SequenceAllocator


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
