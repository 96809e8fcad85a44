"""The router: rows go to their table's lane; with shards, one key always to the same lane."""

from __future__ import annotations

import anyio
import pytest

from streamd.errors import SourceError
from streamd.metrics import Metrics
from streamd.pipeline.lanes import Lane, open_lanes
from streamd.pipeline.router import YIELD_EVERY, Router
from streamd.rows import Envelope


async def test_same_key_same_shard_and_counts() -> None:
    """Every row of one producer lands in one shard; produced counts are per table."""
    lanes = open_lanes(["DB.S.A", "DB.S.B"], capacity=100, shards=3)
    metrics = Metrics()
    async with Router(lanes, metrics).sender() as send:
        for i in range(30):
            await send.send(Envelope("DB.S.A", {"i": i}, key=f"p{i % 5}"))
        await send.send(Envelope("DB.S.B", {"i": -1}, key="x"))
    placement: dict[int, str] = {}
    for name, lane in lanes.items():
        async with lane.receive:
            async for envelope in lane.receive:
                if name.startswith("DB.S.A"):
                    assert placement.setdefault(envelope.row["i"] % 5, name) == name
    assert len(set(placement.values())) > 1
    assert metrics.value("streamd_rows_produced", table="DB.S.A") == 30
    assert metrics.value("streamd_rows_produced", table="DB.S.B") == 1


async def close_readers(lanes: dict[str, Lane]) -> None:
    """Close what the batchers would have closed (anyio warns about unclosed streams)."""
    for lane in lanes.values():
        await lane.receive.aclose()


async def test_unknown_table_is_an_error() -> None:
    """A row for an undeclared table stops the pipeline with a clear error rather than vanishing."""
    lanes = open_lanes(["DB.S.A"], capacity=10)
    async with Router(lanes, Metrics()).sender() as send:
        with pytest.raises(SourceError, match=r"DB\.S\.NOPE"):
            await send.send(Envelope("DB.S.NOPE", {}))
    await close_readers(lanes)


async def test_lanes_end_when_the_last_clone_closes() -> None:
    """Like a memory stream: the lanes see the end only once every sender clone is closed."""
    lanes = open_lanes(["DB.S.A"], capacity=10)
    root = Router(lanes, Metrics()).sender()
    clone = root.clone()
    await root.aclose()
    await clone.send(Envelope("DB.S.A", {"i": 1}))
    lane = lanes["DB.S.A"]
    assert lane.receive.receive_nowait().row == {"i": 1}
    with pytest.raises(anyio.WouldBlock):
        lane.receive.receive_nowait()  # still open: one clone remains
    await clone.aclose()
    with pytest.raises(anyio.EndOfStream):
        lane.receive.receive_nowait()
    with pytest.raises(anyio.ClosedResourceError):
        await clone.send(Envelope("DB.S.A", {}))
    await close_readers(lanes)


async def test_full_lane_blocks_the_sender() -> None:
    """Backpressure: with the lane full, send waits until the lane's reader takes a row."""
    lanes = open_lanes(["DB.S.A"], capacity=2)
    lane = lanes["DB.S.A"]
    sent = 0
    async with Router(lanes, Metrics()).sender() as send:

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

    async with anyio.create_task_group() as tg, Router(lanes, Metrics()).sender() as send:
        tg.start_soon(other)
        await anyio.lowlevel.checkpoint()
        before = turns
        for i in range(4 * YIELD_EVERY):
            await send.send(Envelope("DB.S.A", {"i": i}))
        assert turns - before >= 3
        tg.cancel_scope.cancel()
    await close_readers(lanes)
