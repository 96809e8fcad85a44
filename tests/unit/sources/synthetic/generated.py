"""What a synthetic source emits on a manual clock: shared by the manufacturing and retail tests."""

from __future__ import annotations

from typing import Any

from streamd.rows import Envelope
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
