"""Batching policy by rows, bytes and age, driven by a manual clock."""

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


async def _run(
    policy: BatchPolicy, rows: list[Row], clock: ManualClock, advance: float = 0.0
) -> tuple[list[Batch], _Rejected]:
    rejected = _Rejected()
    batcher = Batcher("T", policy, clock, on_oversize=rejected)
    row_send, row_receive = anyio.create_memory_object_stream[Row](100)
    out_send, out_receive = anyio.create_memory_object_stream[Batch](100)
    batches: list[Batch] = []
    async with out_receive, anyio.create_task_group() as tg:
        tg.start_soon(batcher.run, row_receive, out_send)
        for row in rows:
            await row_send.send(row)
        await anyio.wait_all_tasks_blocked()
        if advance:
            clock.advance(advance)
            await anyio.wait_all_tasks_blocked()
            while True:
                try:
                    batches.append(out_receive.receive_nowait())
                except anyio.WouldBlock:
                    break
        await row_send.aclose()
        async for batch in out_receive:
            batches.append(batch)
    return batches, rejected


async def test_cuts_by_row_count() -> None:
    """Seven rows with max_rows=3 give batches of 3, 3 and 1 (the last at end of input)."""
    batches, _ = await _run(BatchPolicy(3, 10_000, 60), [{"i": i} for i in range(7)], ManualClock())
    assert [b.rows for b in batches] == [3, 3, 1]
    assert b"".join(b.body for b in batches).splitlines() == [
        orjson.dumps({"i": i}) for i in range(7)
    ]
    assert all(b.body.endswith(b"\n") for b in batches)


async def test_cuts_by_bytes() -> None:
    """A batch never exceeds max_bytes of NDJSON."""
    rows = [{"v": "x" * 20} for _ in range(10)]
    line = len(orjson.dumps(rows[0])) + 1
    batches, _ = await _run(BatchPolicy(1000, line * 3, 60), rows, ManualClock())
    assert [b.rows for b in batches] == [3, 3, 3, 1]
    assert all(len(b.body) <= line * 3 for b in batches)


async def test_linger_sends_partial_batch_when_clock_passes() -> None:
    """Rows wait no longer than linger: the manual clock's advance releases a partial batch."""
    clock = ManualClock()
    rejected = _Rejected()
    batcher = Batcher("T", BatchPolicy(100, 10_000, 0.5), clock, on_oversize=rejected)
    row_send, row_receive = anyio.create_memory_object_stream[Row](100)
    out_send, out_receive = anyio.create_memory_object_stream[Batch](100)
    async with out_receive, anyio.create_task_group() as tg:
        tg.start_soon(batcher.run, row_receive, out_send)
        await row_send.send({"a": 1})
        await row_send.send({"a": 2})
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.4)
        await anyio.wait_all_tasks_blocked()
        assert out_receive.statistics().current_buffer_used == 0
        clock.advance(0.1)
        await anyio.wait_all_tasks_blocked()
        first = out_receive.receive_nowait()
        assert first.rows == 2
        await row_send.aclose()
        rest = [b async for b in out_receive]
    assert rest == []


async def test_oversize_row_goes_to_hook_not_lost() -> None:
    """A row larger than any request is handed to the reject hook; the others still flow."""
    rows: list[Row] = [{"a": 1}, {"big": "x" * 500}, {"a": 2}]
    batches, rejected = await _run(BatchPolicy(100, 200, 60), rows, ManualClock())
    assert [r[1] for r in rejected.rows] == [rows[1]]
    assert sum(b.rows for b in batches) == 2
