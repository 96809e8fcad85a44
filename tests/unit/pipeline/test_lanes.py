"""The lane: a bounded FIFO with the memory stream's semantics and a cheap full-lane path."""

from __future__ import annotations

import anyio
import pytest

from streamd.pipeline.lanes import Lane
from streamd.rows import Envelope


def row(i: int) -> Envelope:
    return Envelope("DB.S.T", {"i": i}, key=f"p{i}")


def take_all(lane: Lane) -> list[int]:
    out: list[int] = []
    while True:
        try:
            out.append(lane.receive.receive_nowait().row["i"])
        except anyio.WouldBlock:
            return out


async def test_offer_fills_to_capacity_then_refuses() -> None:
    lane = Lane("DB.S.T", capacity=2)
    assert lane.offer(row(0))
    assert lane.offer(row(1))
    assert not lane.offer(row(2))
    assert (lane.depth, lane.producers_waiting) == (2, 0)
    assert take_all(lane) == [0, 1]


async def test_parked_writers_enter_in_order_as_the_reader_takes() -> None:
    """Writers that found the lane full go in oldest first; a later offer never overtakes them."""
    lane = Lane("DB.S.T", capacity=2)
    done: list[int] = []

    async def put(i: int) -> None:
        await lane.put(row(i))
        done.append(i)

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(put, i)
            await anyio.wait_all_tasks_blocked()
        assert (lane.depth, lane.producers_waiting) == (2, 3)
        assert lane.receive.receive_nowait().row["i"] == 0
        # Row 2 took the freed place at once: the lane is full again and 5 must not get in.
        assert (lane.depth, lane.producers_waiting) == (2, 2)
        assert not lane.offer(row(5))
        await anyio.wait_all_tasks_blocked()
        assert done == [0, 1, 2]
        assert [(await lane.receive.receive()).row["i"] for _ in range(4)] == [1, 2, 3, 4]
    assert done == [0, 1, 2, 3, 4]


async def test_a_cancelled_writer_leaves_no_row_and_no_hole() -> None:
    lane = Lane("DB.S.T", capacity=1)
    lane.offer(row(0))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lane.put, row(1))
        await anyio.wait_all_tasks_blocked()
        async with anyio.create_task_group() as doomed:
            doomed.start_soon(lane.put, row(2))
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(lane.put, row(3))
            await anyio.wait_all_tasks_blocked()
            assert lane.producers_waiting == 3
            doomed.cancel_scope.cancel()
        assert lane.producers_waiting == 2
        assert take_all(lane) == [0, 1, 3]
    assert lane.producers_waiting == 0
    assert lane.offer(row(4))
    assert take_all(lane) == [4]


async def test_reader_waits_and_ends_after_the_writers_close() -> None:
    lane = Lane("DB.S.T", capacity=10)
    got: list[int] = []

    async def read() -> None:
        async for envelope in lane.receive:
            got.append(envelope.row["i"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        await anyio.wait_all_tasks_blocked()
        lane.offer(row(0))
        await lane.put(row(1))
        lane.close_writers()
    assert got == [0, 1]
    with pytest.raises(anyio.EndOfStream):
        lane.receive.receive_nowait()
    with pytest.raises(anyio.ClosedResourceError):
        lane.offer(row(2))


async def test_a_closed_reader_breaks_parked_and_later_writers() -> None:
    lane = Lane("DB.S.T", capacity=1)
    lane.offer(row(0))
    failures: list[type[BaseException]] = []

    async def put() -> None:
        try:
            await lane.put(row(1))
        except anyio.BrokenResourceError as exc:
            failures.append(type(exc))

    async with anyio.create_task_group() as tg:
        tg.start_soon(put)
        await anyio.wait_all_tasks_blocked()
        await lane.receive.aclose()
    assert failures == [anyio.BrokenResourceError]
    assert (lane.depth, lane.producers_waiting) == (0, 0)
    with pytest.raises(anyio.BrokenResourceError):
        lane.offer(row(2))
    with pytest.raises(anyio.ClosedResourceError):
        lane.receive.receive_nowait()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Lane("DB.S.T", capacity=0)
