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


async def test_window_lets_ten_requests_into_any_second() -> None:
    """Ten acknowledged appends fill the second; the eleventh waits until the first leaves it."""
    clock = ManualClock()
    pacer = ChannelPacer(clock)
    for _ in range(10):
        assert await pacer.before_append(100) == 0.0
        pacer.appended(100)
        clock.advance(0.05)
    async with _waiting_append(pacer, 100) as waited:
        assert waited == []
        clock.advance(0.5)
    assert waited == [pytest.approx(0.5)]


async def test_window_limits_bytes_and_lets_one_oversize_body_through() -> None:
    """12 + 12 MB would pass 20 MB in one second: the second waits until the first leaves it; a
    single 30 MB body into an empty window goes at once."""
    clock = ManualClock()
    pacer = ChannelPacer(clock)
    assert await pacer.before_append(30_000_000) == 0.0
    pacer.appended(30_000_000)
    clock.advance(1.0)
    assert await pacer.before_append(12_000_000) == 0.0
    pacer.appended(12_000_000)
    clock.advance(0.3)
    async with _waiting_append(pacer, 12_000_000) as waited:
        assert waited == []
        clock.advance(0.7)
    assert waited == [pytest.approx(0.7)]
    pacer.appended(12_000_000)
    assert pacer.bytes.wait_s(8_000_000) == 0.0  # exactly 20 MB fits
    assert pacer.bytes.wait_s(8_000_001) == pytest.approx(1.0)
