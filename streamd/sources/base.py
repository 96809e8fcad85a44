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
    backpressure. `resume` maps a producer name (for example ``"sensor:EQ-001"``) to the first
    sequence number it should emit, so ids never repeat across restarts.
    """

    send: ObjectSendStream[Envelope]
    clock: Clock
    resume: dict[str, int]


class Source(Protocol):
    """A producer of rows.

    `run` pushes envelopes into `ctx.send` and returns when its input is exhausted. Cancellation means
    stop now. A source never buffers beyond the stream and never imports `streamd.snowflake`.
    """

    name: str

    async def run(self, ctx: SourceContext) -> None:
        """Produce until the input ends or the task is cancelled."""
        ...
