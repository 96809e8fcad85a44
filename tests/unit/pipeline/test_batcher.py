"""Rows are spooled, then cut into batches by rows, bytes and age (manual clock); offsets are seqs."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from streamd.clock import SystemClock
from streamd.pipeline import batcher as batcher_module
from streamd.pipeline.batcher import Batcher, BatchPolicy
from streamd.rows import Batch, Envelope, Row
from streamd.spool import LaneSpool, SpoolConfig
from streamd.testing import ManualClock

SPOOL = SpoolConfig(fsync="never", segment_bytes=1 << 20, max_bytes=1 << 24)


class _Rejected:
    def __init__(self) -> None:
        self.rows: list[tuple[str, Row, int]] = []
        self.positions: list[str | None] = []

    async def __call__(self, table: str, row: Row, size: int, position: str | None) -> None:
        self.rows.append((table, row, size))
        self.positions.append(position)


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


async def _drain(
    tmp_path: Path, policy: BatchPolicy, rows: list[Row], key: str = ""
) -> tuple[list[Batch], _Rejected, LaneSpool]:
    """Feed all rows, end the lane, and pull every batch."""
    rejected = _Rejected()
    spool = await LaneSpool.open(tmp_path / "lane", SPOOL, ManualClock())
    batcher = Batcher("T", spool, policy, ManualClock(), on_oversize=rejected)
    batcher.replay_from(spool.committed + 1)
    send, receive = anyio.create_memory_object_stream[Envelope](1000)
    batches: list[Batch] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        async with send:
            for row in rows:
                await send.send(Envelope("T", row, key))
        while (batch := await batcher.next_batch()) is not None:
            batches.append(batch)
    return batches, rejected, spool


async def test_cuts_by_row_count_with_spool_sequences_as_offsets(tmp_path: Path) -> None:
    """Seven rows with max_rows=3 give batches 1–3, 4–6 and 7 (the last at end of input)."""
    batches, _, spool = await _drain(
        tmp_path, BatchPolicy(3, 10_000, 60), [{"i": i} for i in range(7)]
    )
    assert [(b.first_offset, b.last_offset, b.rows) for b in batches] == [
        (1, 3, 3),
        (4, 6, 3),
        (7, 7, 1),
    ]
    lines = b"".join(b.body for b in batches).splitlines()
    assert lines == [orjson.dumps({"i": i}) for i in range(7)]
    assert all(b.body.endswith(b"\n") for b in batches)
    assert spool.next_seq == 8
    await spool.aclose()


async def test_cuts_by_bytes(tmp_path: Path) -> None:
    """A batch never exceeds max_bytes of NDJSON."""
    rows = [{"v": "x" * 20} for _ in range(10)]
    line = len(orjson.dumps(rows[0])) + 1
    batches, _, spool = await _drain(tmp_path, BatchPolicy(1000, line * 3, 60), rows)
    assert sum(b.rows for b in batches) == 10
    assert all(len(b.body) <= line * 3 for b in batches)
    await spool.aclose()


async def test_replays_from_the_committed_offset_after_restart(tmp_path: Path) -> None:
    """A new batcher on the same spool, started at seq 3, hands out rows 3–5 again, due at once."""
    _, _, spool = await _drain(tmp_path, BatchPolicy(100, 10_000, 60), [{"i": i} for i in range(5)])
    await spool.aclose()
    reopened = await LaneSpool.open(tmp_path / "lane", SPOOL, ManualClock())
    batcher = Batcher(
        "T", reopened, BatchPolicy(100, 10_000, 3600), ManualClock(), on_oversize=_Rejected()
    )
    batcher.replay_from(3)
    batch = await batcher.next_batch()
    assert batch is not None
    assert (batch.first_offset, batch.last_offset) == (3, 5)
    assert batch.body.splitlines() == [orjson.dumps({"i": i}) for i in (2, 3, 4)]
    await reopened.aclose()


async def test_as_a_batch_source_it_rereads_and_releases_without_the_sink_seeing_the_spool(
    tmp_path: Path,
) -> None:
    """A range comes back exactly as cut; a release moves the committed mark; the spool's
    when_full says whether unreleased rows may vanish."""
    batches, _, spool = await _drain(
        tmp_path, BatchPolicy(3, 10_000, 60), [{"i": i} for i in range(7)]
    )
    batcher = Batcher(
        "T", spool, BatchPolicy(3, 10_000, 60), ManualClock(), on_oversize=_Rejected()
    )
    [again] = await batcher.reread(4, 6)
    assert (again.first_offset, again.last_offset, again.rows) == (4, 6, 3)
    assert again.body == batches[1].body
    assert batcher.committed == 0
    await batcher.release(3)
    assert (batcher.committed, spool.committed, batcher.stats()["committed"]) == (3, 3, 3)
    assert await batcher.reread(8, 9) == []  # nothing stored there yet
    assert not batcher.may_drop_unreleased
    await spool.aclose()
    dropping = await LaneSpool.open(
        tmp_path / "lane", SpoolConfig(fsync="never", when_full="drop_oldest"), ManualClock()
    )
    assert Batcher(
        "T", dropping, BatchPolicy(3, 100, 1), ManualClock(), on_oversize=_Rejected()
    ).may_drop_unreleased
    await dropping.aclose()


async def test_linger_releases_a_partial_batch_when_the_clock_passes(tmp_path: Path) -> None:
    """A partial batch is handed out only once its first row has waited linger_s."""
    clock = ManualClock()
    spool = await LaneSpool.open(tmp_path / "lane", SPOOL, clock)
    batcher = Batcher("T", spool, BatchPolicy(100, 10_000, 0.5), clock, on_oversize=_Rejected())
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    got: list[Batch] = []
    taken = anyio.Event()

    async def take() -> None:
        batch = await batcher.next_batch()
        assert batch is not None
        got.append(batch)
        taken.set()

    async with send, anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        await send.send(Envelope("T", {"a": 1}))
        await send.send(Envelope("T", {"a": 2}))
        await wait_spooled(spool, 3)
        tg.start_soon(take)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.4)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        await send.send(
            Envelope("T", {"a": 3})
        )  # joins the unsent rows; their age still counts from row 1
        await wait_spooled(spool, 4)
        clock.advance(0.1)
        with anyio.fail_after(5):
            await taken.wait()
        assert [b.rows for b in got] == [3]
        tg.cancel_scope.cancel()
    await spool.aclose()


async def wait_spooled(spool: LaneSpool, next_seq: int) -> None:
    with anyio.fail_after(5):
        await spool.wait_for(next_seq - 1)


async def test_oversize_row_goes_to_hook_not_lost(tmp_path: Path) -> None:
    """A row larger than any request is handed to the reject hook; the others still flow."""
    rows: list[Row] = [{"a": 1}, {"big": "x" * 500}, {"a": 2}]
    batches, rejected, spool = await _drain(tmp_path, BatchPolicy(100, 200, 60), rows)
    assert [r[1] for r in rejected.rows] == [rows[1]]
    assert rejected.positions == [None]
    assert sum(b.rows for b in batches) == 2
    await spool.aclose()


async def test_oversize_row_keeps_where_it_came_from(tmp_path: Path) -> None:
    """The dead letter's position is the row's source key (an MQTT row: `<source>:<topic>`)."""
    rows: list[Row] = [{"big": "x" * 500}]
    _, rejected, spool = await _drain(
        tmp_path, BatchPolicy(100, 200, 60), rows, key="plant:plants/a/telemetry"
    )
    assert rejected.positions == ["plant:plants/a/telemetry"]
    await spool.aclose()


async def test_acks_only_after_the_spool_append(tmp_path: Path) -> None:
    """Each row's ack gets its spool sequence; an oversize row is acked with None (not spooled)."""
    acked: list[tuple[int, int | None]] = []
    spool = await LaneSpool.open(tmp_path / "lane", SPOOL, ManualClock())
    batcher = Batcher("T", spool, BatchPolicy(100, 200, 60), ManualClock(), on_oversize=_Rejected())
    send, receive = anyio.create_memory_object_stream[Envelope](10)
    rows: list[Row] = [{"i": 0}, {"big": "x" * 500}, {"i": 2}]
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        async with send:
            for n, row in enumerate(rows):
                await send.send(Envelope("T", row, ack=lambda seq, n=n: acked.append((n, seq))))
    assert sorted(acked) == [(0, 1), (1, None), (2, 2)]
    assert spool.next_seq == 3
    await spool.aclose()


async def _spooled_batcher(
    tmp_path: Path, policy: BatchPolicy, clock: SystemClock
) -> tuple[LaneSpool, Batcher]:
    spool = await LaneSpool.open(tmp_path / "lane", SPOOL, clock)
    batcher = Batcher("T", spool, policy, clock, on_oversize=_Rejected())
    batcher.replay_from(1)
    return spool, batcher


async def _assert_bodies_are_the_spools(spool: LaneSpool, batches: list[Batch]) -> None:
    """Each batch's body is exactly what the spool holds for its offsets."""
    for b in batches:
        records = await spool.read(b.first_offset, b.rows, 1 << 20)
        assert [seq for seq, _ in records] == list(range(b.first_offset, b.last_offset + 1))
        assert b.body == b"".join(payload + b"\n" for _, payload in records)


async def test_batches_from_memory_equal_the_spool_read_back(tmp_path: Path) -> None:
    """Batches cut from the in-memory tail are byte for byte what a replay reads from the spool."""
    policy = BatchPolicy(max_rows=7, max_bytes=300, linger_s=0.0)
    clock = SystemClock()  # fill coalesces trickling appends with real (2 ms) sleeps
    spool, batcher = await _spooled_batcher(tmp_path, policy, clock)
    send, receive = anyio.create_memory_object_stream[Envelope](1000)
    batches: list[Batch] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        async with send:
            for i in range(60):
                await send.send(Envelope("T", {"i": i, "pad": "x" * (i % 40)}))
        while (batch := await batcher.next_batch()) is not None:
            batches.append(batch)
    assert sum(b.rows for b in batches) == 60
    assert len(batches) > 5

    await _assert_bodies_are_the_spools(spool, batches)
    await spool.aclose()


async def test_a_stalled_writer_costs_no_tail_and_bounded_append_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While nobody takes batches (commits frozen) the spool grows, the batcher's memory does not;
    once the writer takes again, every row comes out once, in order, as the spool holds it."""
    monkeypatch.setattr(batcher_module, "MAX_APPEND_TIMES", 16)
    policy = BatchPolicy(max_rows=5, max_bytes=200, linger_s=0.0)
    clock = SystemClock()
    spool, batcher = await _spooled_batcher(tmp_path, policy, clock)
    send, receive = anyio.create_memory_object_stream[Envelope](1000)
    batches: list[Batch] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(batcher.fill, receive)
        async with send:
            for i in range(200):  # one spool append per row: each waits for the last to land
                await send.send(Envelope("T", {"i": i}))
                await wait_spooled(spool, i + 2)
                assert len(batcher._chunks) <= 16
            assert batcher._tail_bytes == 0
        while (batch := await batcher.next_batch()) is not None:
            batches.append(batch)
    assert [b.first_offset for b in batches] == list(range(1, 201, 5))
    await _assert_bodies_are_the_spools(spool, batches)
    await spool.aclose()
