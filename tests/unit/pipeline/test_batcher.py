"""Batching policy by rows, bytes and age, driven by a manual clock; the writer pulls batches."""

from __future__ import annotations

import anyio
import orjson

from streamd.pipeline.batcher import Batcher, BatchPolicy
from streamd.rows import Batch, Row
from streamd.testing import ManualClock


class _Rejected:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Row, int]] = []

    async def __call__(self, table: str, row: Row, size: int) -> None:
        self.rows.append((table, row, size))


def test_policy_limits() -> None:
    """Rows fit until the row count or the byte limit would be passed."""
    policy = BatchPolicy(max_rows=3, max_bytes=100, linger_s=0.5)
    assert policy.fits(0, 0, 50)
    assert not policy.fits(3, 10, 1)
    assert not policy.fits(1, 60, 40)
    assert policy.is_full(3, 0)
    assert policy.is_full(0, 100)
    assert not policy.is_due(10.0, 10.4)
    assert policy.is_due(10.0, 10.5)


async def _drain(policy: BatchPolicy, rows: list[Row]) -> tuple[list[Batch], _Rejected]:
    """Feed all rows, end the lane, and pull every batch."""
    rejected = _Rejected()
    batcher = Batcher("T", policy, ManualClock(), on_oversize=rejected)
    send, receive = anyio.create_memory_object_stream[Row](1000)
    batches: list[Batch] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        async with send:
            for row in rows:
                await send.send(row)
        while (batch := await batcher.next_batch()) is not None:
            batches.append(batch)
    return batches, rejected


async def test_cuts_by_row_count() -> None:
    """Seven rows with max_rows=3 give batches of 3, 3 and 1 (the last at end of input)."""
    batches, _ = await _drain(BatchPolicy(3, 10_000, 60), [{"i": i} for i in range(7)])
    assert [b.rows for b in batches] == [3, 3, 1]
    lines = b"".join(b.body for b in batches).splitlines()
    assert lines == [orjson.dumps({"i": i}) for i in range(7)]
    assert all(b.body.endswith(b"\n") for b in batches)


async def test_cuts_by_bytes() -> None:
    """A batch never exceeds max_bytes of NDJSON."""
    rows = [{"v": "x" * 20} for _ in range(10)]
    line = len(orjson.dumps(rows[0])) + 1
    batches, _ = await _drain(BatchPolicy(1000, line * 3, 60), rows)
    assert [b.rows for b in batches] == [3, 3, 3, 1]
    assert all(len(b.body) <= line * 3 for b in batches)


async def test_full_batch_stops_reading_the_lane() -> None:
    """With nobody taking batches, exactly one full batch is pending and the lane keeps the rest."""
    batcher = Batcher("T", BatchPolicy(4, 10_000, 60), ManualClock(), on_oversize=_Rejected())
    send, receive = anyio.create_memory_object_stream[Row](100)
    async with send, anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        for i in range(10):
            await send.send({"i": i})
        await anyio.wait_all_tasks_blocked()
        # 4 pending in the batch, 1 held by fill waiting for space, 5 still in the lane.
        assert batcher.pending_rows == 4
        assert send.statistics().current_buffer_used == 5
        first = await batcher.next_batch()
        assert first is not None
        assert first.rows == 4
        tg.cancel_scope.cancel()


async def test_linger_releases_a_partial_batch_when_the_clock_passes() -> None:
    """A partial batch is handed out only once its first row has waited linger_s."""
    clock = ManualClock()
    batcher = Batcher("T", BatchPolicy(100, 10_000, 0.5), clock, on_oversize=_Rejected())
    send, receive = anyio.create_memory_object_stream[Row](100)
    got: list[Batch] = []

    async def take() -> None:
        batch = await batcher.next_batch()
        assert batch is not None
        got.append(batch)

    async with send, anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        await send.send({"a": 1})
        await send.send({"a": 2})
        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.4)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        await send.send({"a": 3})  # joins the pending batch; its age still counts from row 1
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        assert [b.rows for b in got] == [3]
        tg.cancel_scope.cancel()


async def test_oversize_row_goes_to_hook_not_lost() -> None:
    """A row larger than any request is handed to the reject hook; the others still flow."""
    rows: list[Row] = [{"a": 1}, {"big": "x" * 500}, {"a": 2}]
    batches, rejected = await _drain(BatchPolicy(100, 200, 60), rows)
    assert [r[1] for r in rejected.rows] == [rows[1]]
    assert sum(b.rows for b in batches) == 2
