"""Memory policy: the heap trim loop's schedule, that a trim gives freed pages back, and the
collector's pace and freeze, restored after a run and never changed by a source."""

from __future__ import annotations

import gc
from datetime import datetime

import anyio
import pytest

from streamd.clock import SystemClock
from streamd.daemon import memory
from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.synthetic.manufacturing import ManufacturingSourceConfig
from streamd.sources.synthetic.schedule import Producer, SyntheticSource, producer_rng
from streamd.testing import ManualClock, MemorySequences
from tests.helpers import eventually


async def _until_sleeping(clock: ManualClock) -> None:
    """Real time, not checkpoints: a trim runs in a worker thread, which a loaded machine delays."""
    await eventually(lambda: clock.sleepers, interval=0.001, what="trim loop back asleep")


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


def test_trim_gives_back_pages_freed_under_a_live_object() -> None:
    """Rows kept one in a hundred pin the heap's top, so only a trim can hand the rest back.

    `malloc_trim` answers 1 when it released memory to the system; how much RSS drops is the
    allocator's business and the machine's, so it is not asserted here.
    """
    trim = memory.heap_trimmer()
    if trim is None:
        pytest.skip("no malloc_trim in this C library")
    rows = [bytes(4000) + i.to_bytes(4, "little") for i in range(20_000)]  # ~80 MB of heap
    kept = rows[::100]
    del rows
    assert trim() == 1
    assert len(kept) == 200
    assert all(row[4000:] == (i * 100).to_bytes(4, "little") for i, row in enumerate(kept))


def _gc_state() -> tuple[bool, tuple[int, int, int], int]:
    return gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()


def test_collector_policy_raises_the_young_threshold_and_restores_it() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with memory.CollectorPolicy().applied():
            assert gc.get_threshold() == (memory.YOUNG_GENERATION_THRESHOLD, 10, 10)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 10, 10)  # never lowered by the daemon
        with memory.CollectorPolicy().applied():
            assert gc.get_threshold()[0] == 50_000
    finally:
        gc.set_threshold(*before)


def test_the_policy_freezes_during_the_run_and_restores_the_collector_after() -> None:
    """What the daemon froze is unfrozen, and thresholds are as before, when the run ends."""
    gc.unfreeze()
    before = _gc_state()
    policy = memory.CollectorPolicy()
    policy.freeze()  # outside a run: nothing to undo later, so nothing is done
    assert gc.get_freeze_count() == 0
    with policy.applied():
        policy.freeze()
        assert gc.get_freeze_count() > 0
    assert _gc_state() == before


def test_a_run_leaves_objects_frozen_before_it_frozen() -> None:
    """An embedder's own freeze is not undone by the daemon."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        policy = memory.CollectorPolicy()
        with policy.applied():
            policy.freeze()
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


class _Plan(SyntheticSource[ManufacturingSourceConfig]):
    def plan(self) -> list[Producer]:
        return [Producer("p", "DB.S.T", 0.001, _Row(), producer_rng(1, "p"))]


class _Row:
    def row(self, event_id: str, at: datetime, sequence: int) -> dict[str, object]:
        return {"EVENT_ID": event_id}


async def test_a_source_that_finishes_leaves_the_collector_as_it_was() -> None:
    """Sources only report that they started; the collector's settings are the daemon's alone."""
    gc.unfreeze()
    before = _gc_state()
    started: list[bool] = []
    send, receive = anyio.create_memory_object_stream[Envelope](1)
    ctx = SourceContext(
        send, SystemClock(), MemorySequences(), started=lambda: started.append(True)
    )
    source = _Plan(ManufacturingSourceConfig())
    with anyio.fail_after(10):
        async with send, anyio.create_task_group() as tg:
            tg.start_soon(source.run, ctx)
            await receive.receive()
            await receive.aclose()  # nobody takes rows any more: the source stops by itself
    assert started == [True]
    assert _gc_state() == before
