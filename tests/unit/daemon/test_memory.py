"""Memory policy: the heap trim loop's schedule, that a trim gives freed pages back, and the
collector's pace."""

from __future__ import annotations

import gc
from pathlib import Path

import anyio
import pytest

from streamd.daemon import memory
from streamd.testing import ManualClock


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def _until_sleeping(clock: ManualClock) -> None:
    """Real time, not checkpoints: a trim runs in a worker thread, which a loaded machine delays."""
    for _ in range(10_000):
        if clock.sleepers:
            return
        await anyio.sleep(0.001)
    raise AssertionError("trim loop did not go back to sleep")


async def test_trims_once_per_interval_until_cancelled() -> None:
    clock = ManualClock()
    calls: list[float] = []

    def trim() -> int:
        calls.append(clock.monotonic())
        return 0

    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: memory.trim_heap_loop(clock, interval_s=5.0, trim=trim))
        await _until_sleeping(clock)
        clock.advance(4.9)
        await _until_sleeping(clock)
        assert calls == []
        for step in (0.1, 5.0, 5.0):
            clock.advance(step)
            await _until_sleeping(clock)
        tg.cancel_scope.cancel()
    assert calls == [5.0, 10.0, 15.0]


async def test_without_a_trimmer_the_loop_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "heap_trimmer", lambda: None)
    with anyio.fail_after(1):
        await memory.trim_heap_loop(ManualClock())


def test_trim_returns_pages_freed_under_a_live_object() -> None:
    """Rows kept one in a hundred pin the heap's top, so only a trim can hand the rest back."""
    trim = memory.heap_trimmer()
    if trim is None or not Path("/proc/self/status").exists():
        pytest.skip("no malloc_trim in this C library")
    rows = [bytes(4000) + i.to_bytes(4, "little") for i in range(20_000)]  # ~80 MB of heap
    kept = rows[::100]
    del rows
    before = _rss_mb()
    assert trim() == 1
    assert before - _rss_mb() > 40
    assert len(kept) == 200


def test_collector_paced_raises_the_young_threshold_and_restores_it() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with memory.collector_paced():
            assert gc.get_threshold() == (memory.YOUNG_GENERATION_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # never lowered by the daemon
        with memory.collector_paced():
            assert gc.get_threshold()[0] == 50_000
    finally:
        gc.set_threshold(*before)
