"""Per-channel pacing: both soft limits over any one-second window, on a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest

from streamd.sinks.streaming.pacing import ChannelPacer
from streamd.testing import ManualClock


@asynccontextmanager
async def _waiting_append(pacer: ChannelPacer, nbytes: int) -> AsyncIterator[list[float]]:
    """An append of `nbytes` waiting for the pacer in the background; the list gets its wait."""
    waited: list[float] = []
    async with anyio.create_task_group() as tg:

        async def append() -> None:
            waited.append(await pacer.before_append(nbytes))

        tg.start_soon(append)
        await anyio.wait_all_tasks_blocked()
        yield waited


async def _goes_at_once(
    pacer: ChannelPacer, clock: ManualClock, nbytes: int, then_s: float
) -> None:
    """An append of `nbytes` that waits for nothing and is acknowledged; then `then_s` pass."""
    assert await pacer.before_append(nbytes) == 0.0
    pacer.appended(nbytes)
    clock.advance(then_s)


async def test_window_lets_ten_requests_into_any_second() -> None:
    """Ten acknowledged appends fill the second; the eleventh waits until the first leaves it."""
    clock = ManualClock()
    pacer = ChannelPacer(clock)
    for _ in range(10):
        await _goes_at_once(pacer, clock, 100, 0.05)
    async with _waiting_append(pacer, 100) as waited:
        assert waited == []
        clock.advance(0.5)
    assert waited == [pytest.approx(0.5)]


async def test_window_limits_bytes_and_lets_one_oversize_body_through() -> None:
    """12 + 12 MB would pass 20 MB in one second: the second waits until the first leaves it; a
    single 30 MB body into an empty window goes at once."""
    clock = ManualClock()
    pacer = ChannelPacer(clock)
    await _goes_at_once(pacer, clock, 30_000_000, 1.0)
    await _goes_at_once(pacer, clock, 12_000_000, 0.3)
    async with _waiting_append(pacer, 12_000_000) as waited:
        assert waited == []
        clock.advance(0.7)
    assert waited == [pytest.approx(0.7)]
    pacer.appended(12_000_000)
    assert pacer.bytes.wait_s(8_000_000) == 0.0  # exactly 20 MB fits
    assert pacer.bytes.wait_s(8_000_001) == pytest.approx(1.0)
