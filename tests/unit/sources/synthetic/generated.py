"""What a synthetic source emits on a manual clock: shared by the manufacturing and retail tests."""

from __future__ import annotations

from typing import Any

import anyio

from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.synthetic.schedule import SyntheticSource
from streamd.testing import ManualClock, MemorySequences, drain, running_source, settle


async def generated(
    source: SyntheticSource[Any],
    seconds: float,
    *,
    steps: int = 1,
    clock: ManualClock | None = None,
    sequences: MemorySequences | None = None,
) -> list[Envelope]:
    """Everything `source` emits while a manual clock advances `seconds` in `steps` steps."""
    clock = clock or ManualClock()
    n = len(source.producers())
    out: list[Envelope] = []
    async with running_source(source, clock, sequences) as receive:
        await settle(clock, n)
        for _ in range(steps):
            clock.advance(seconds / steps)
            await settle(clock, n)
            out += drain(receive)
    return out


def producer_of(envelope: Envelope) -> str:
    """The producer part of an `EVENT_ID` (`<producer>:<number>`)."""
    return str(envelope.row["EVENT_ID"]).rsplit(":", 1)[0]


async def returns_when_the_receiver_closes(source: SyntheticSource[Any]) -> None:
    """`source.run` returns by itself (no cancellation) once nobody receives its rows."""
    clock = ManualClock()
    send, receive = anyio.create_memory_object_stream[Envelope](1)
    ctx = SourceContext(send=send, clock=clock, sequences=MemorySequences())
    with send, anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run, ctx)
            await settle(clock, len(source.producers()))
            receive.close()
            clock.advance(10.0)
        # The task group ends because run returned, not because anyone cancelled it.
        assert not tg.cancel_scope.cancel_called
