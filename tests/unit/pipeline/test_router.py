"""The router: rows go to their table's lane; with shards, one key always to the same lane."""

from __future__ import annotations

import anyio
import pytest

from streamd.errors import SourceError
from streamd.pipeline.lanes import Lane, open_lanes
from streamd.pipeline.router import YIELD_EVERY, Router
from streamd.pipeline.stats import PipelineStats
from streamd.rows import Envelope


async def test_same_key_same_shard_and_counts() -> None:
    """Every row of one producer lands in one shard; produced counts are per table."""
    lanes = open_lanes(["DB.S.A", "DB.S.B"], capacity=100, shards=3)
    stats = PipelineStats()
    router = Router(lanes, stats)
    send = router.sender()
    for i in range(30):
        await send.send(Envelope("DB.S.A", {"i": i}, key=f"p{i % 5}"))
    await send.send(Envelope("DB.S.B", {"i": -1}, key="x"))
    router.close_lanes()
    placement: dict[int, str] = {}
    for name, lane in lanes.items():
        async with lane.receive:
            async for envelope in lane.receive:
                if name.startswith("DB.S.A"):
                    assert placement.setdefault(envelope.row["i"] % 5, name) == name
    assert len(set(placement.values())) > 1
    assert stats.produced == {"DB.S.A": 30, "DB.S.B": 1}


async def close_readers(lanes: dict[str, Lane]) -> None:
    """Close what the batchers would have closed (anyio warns about unclosed streams)."""
    for lane in lanes.values():
        await lane.receive.aclose()


async def test_unknown_table_is_an_error() -> None:
    """A row for an undeclared table stops the pipeline with a clear error rather than vanishing."""
    lanes = open_lanes(["DB.S.A"], capacity=10)
    send = Router(lanes, PipelineStats()).sender()
    with pytest.raises(SourceError, match=r"DB\.S\.NOPE"):
        await send.send(Envelope("DB.S.NOPE", {}))
    await close_readers(lanes)


async def test_lanes_end_when_the_router_closes_them() -> None:
    """Senders share the lanes; the lanes see the end only once the router closes them."""
    lanes = open_lanes(["DB.S.A"], capacity=10)
    router = Router(lanes, PipelineStats())
    first, second = router.sender(), router.sender()
    await first.send(Envelope("DB.S.A", {"i": 1}))
    await second.send(Envelope("DB.S.A", {"i": 2}))
    lane = lanes["DB.S.A"]
    assert lane.receive.receive_nowait().row == {"i": 1}
    assert lane.receive.receive_nowait().row == {"i": 2}
    with pytest.raises(anyio.WouldBlock):
        lane.receive.receive_nowait()  # still open
    router.close_lanes()
    router.close_lanes()  # idempotent
    with pytest.raises(anyio.EndOfStream):
        lane.receive.receive_nowait()
    with pytest.raises(anyio.BrokenResourceError):
        await second.send(Envelope("DB.S.A", {}))
    await close_readers(lanes)


async def test_full_lane_blocks_the_sender() -> None:
    """Backpressure: with the lane full, send waits until the lane's reader takes a row."""
    lanes = open_lanes(["DB.S.A"], capacity=2)
    lane = lanes["DB.S.A"]
    sent = 0
    send = Router(lanes, PipelineStats()).sender()

    async def produce() -> None:
        nonlocal sent
        for i in range(5):
            await send.send(Envelope("DB.S.A", {"i": i}))
            sent += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(produce)
        await anyio.wait_all_tasks_blocked()
        assert sent == 2
        assert lane.producers_waiting == 1
        for expected in range(5):
            assert (await lane.receive.receive()).row == {"i": expected}
    await close_readers(lanes)


async def test_a_tight_sender_yields_to_others() -> None:
    """A producer whose lane never fills still lets other tasks run every YIELD_EVERY rows."""
    lanes = open_lanes(["DB.S.A"], capacity=10 * YIELD_EVERY)
    turns = 0

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    send = Router(lanes, PipelineStats()).sender()
    async with anyio.create_task_group() as tg:
        tg.start_soon(other)
        await anyio.lowlevel.checkpoint()
        before = turns
        for i in range(4 * YIELD_EVERY):
            await send.send(Envelope("DB.S.A", {"i": i}))
        assert turns - before >= 3
        tg.cancel_scope.cancel()
    await close_readers(lanes)
