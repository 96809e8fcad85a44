"""LaneSpool: sequence numbers, recovery, commit, bounded disk, fsync policies."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from streamd.spool import (
    BatchTooLarge,
    LaneSpool,
    RecordTooLarge,
    SpoolConfig,
    SpoolCorrupt,
    SpoolLocked,
)
from streamd.spool.chunk import HEADER_SIZE
from streamd.spool.segment import SUFFIX, segment_name
from streamd.testing import ManualClock

ROW = 79  # + newline + 20-byte chunk header: a one-row append is 100 bytes on disk


def chunk(rows: int) -> int:
    """Bytes of an append of `rows` rows on disk (one chunk)."""
    return HEADER_SIZE + rows * (ROW + 1)


def row(i: int) -> bytes:
    line = (b'{"n":%d,"p":"' % i).ljust(ROW - 2, b"x") + b'"}'
    assert len(line) == ROW
    return line


def rows(first: int, n: int) -> list[bytes]:
    return [row(i) for i in range(first, first + n)]


async def open_spool(directory: Path, **config: Any) -> LaneSpool:
    config.setdefault("fsync", "never")
    return await LaneSpool.open(directory, SpoolConfig(**config), ManualClock(), lane="T")


def seg_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob(f"*{SUFFIX}"))


async def test_round_trip_and_reads_by_seq(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    assert (spool.first_seq, spool.next_seq) == (1, 1)
    assert await spool.append(rows(1, 5)) == range(1, 6)
    assert await spool.append([row(6)]) == range(6, 7)
    assert await spool.read(1, 100, 10**9) == list(enumerate(rows(1, 6), 1))
    assert [s for s, _ in await spool.read(3, 2, 10**9)] == [3, 4]
    assert [s for s, _ in await spool.read(3, 100, 2 * (ROW + 1))] == [3, 4]
    assert [s for s, _ in await spool.read(3, 100, 2 * ROW)] == [3]  # newlines count
    assert await spool.read(7, 100, 10**9) == []
    await spool.aclose()


async def test_sequence_and_commit_continue_across_reopen(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    await spool.append(rows(1, 4))
    await spool.commit(2)
    await spool.aclose()

    spool = await open_spool(tmp_path)
    assert (spool.committed, spool.next_seq) == (2, 5)
    assert [s for s, _ in await spool.read(spool.committed + 1, 100, 10**9)] == [3, 4]
    assert await spool.append([row(5)]) == range(5, 6)
    assert spool.stats()["rows_waiting"] == 3
    await spool.aclose()


async def test_everything_committed_and_deleted_still_continues_the_sequence(
    tmp_path: Path,
) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=300)
    await spool.append(rows(1, 3))
    await spool.commit(3)
    await spool.append([row(4)])  # needs the space: the fully committed segment is rolled away
    await spool.commit(4)
    await spool.aclose()
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=300)
    assert await spool.append([row(5)]) == range(5, 6)
    await spool.aclose()


async def test_commit_beyond_the_spool_moves_the_sequence_past_it(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    await spool.append(rows(1, 3))
    await spool.commit(10)  # Snowflake has rows this spool lost (e.g. power cut, fsync=never)
    assert await spool.append([row(11)]) == range(11, 12)
    await spool.aclose()
    spool = await open_spool(tmp_path)
    assert spool.next_seq == 12
    assert [s for s, _ in await spool.read(11, 10, 10**9)] == [11]
    await spool.aclose()


async def test_torn_tail_is_recovered_and_reported(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300)
    await spool.append(rows(1, 3))  # segment 1-3 (one chunk)
    await spool.append([row(4)])  # rolls: segment 4-5 (one chunk each)
    await spool.append([row(5)])
    await spool.aclose()
    last = tmp_path / segment_name(4)
    with last.open("r+b") as f:
        f.truncate(100 + HEADER_SIZE + 10)  # record 5 torn mid-payload

    with capture_logs() as logs:
        spool = await open_spool(tmp_path, segment_bytes=300)

    assert spool.recovered_torn_bytes == HEADER_SIZE + 10
    assert (spool.first_seq, spool.next_seq) == (1, 5)
    assert await spool.read(1, 100, 10**9) == list(enumerate(rows(1, 4), 1))
    assert await spool.append([row(99)]) == range(5, 6)
    assert [e for e in logs if e["event"] == "spool_tail_truncated"] == [
        {
            "event": "spool_tail_truncated",
            "log_level": "warning",
            "lane": "T",
            "segment": segment_name(4),
            "valid_bytes": 100,
            "bytes": HEADER_SIZE + 10,
            "frames": 1,
            "first_lost_seq": 5,
        }
    ]
    await spool.aclose()


async def test_segments_roll_by_size_and_batches_split_across_them(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300)
    assert await spool.append(rows(1, 8)) == range(1, 9)
    assert seg_files(tmp_path) == [segment_name(1), segment_name(4), segment_name(7)]
    # One chunk per segment: as many rows as fit in 300 bytes, then the rest in the next.
    assert [(tmp_path / n).stat().st_size for n in seg_files(tmp_path)] == [
        chunk(3),
        chunk(3),
        chunk(2),
    ]
    assert spool.bytes_on_disk == 2 * chunk(3) + chunk(2)
    assert [s for s, _ in await spool.read(2, 100, 10**9)] == list(range(2, 9))


async def test_commit_deletes_only_fully_committed_segments(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300)
    await spool.append(rows(1, 8))
    await spool.commit(5)  # 1-3 fully committed, 4-6 only partly
    assert seg_files(tmp_path) == [segment_name(4), segment_name(7)]
    assert spool.first_seq == 4
    await spool.commit(8)  # the active segment stays until its space is needed
    assert seg_files(tmp_path) == [segment_name(7)]
    await spool.aclose()
    spool = await open_spool(tmp_path, segment_bytes=300)
    assert (spool.committed, spool.next_seq, spool.stats()["rows_waiting"]) == (8, 9, 0)
    await spool.aclose()


async def test_block_waits_for_a_commit_that_frees_a_segment(tmp_path: Path) -> None:
    # 6 records fill max_bytes exactly (two segments of three).
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=600, when_full="block")
    for i in range(1, 7):
        assert await spool.append([row(i)]) == range(i, i + 1)
    assert spool.bytes_on_disk == 600
    got: list[range] = []

    async def seventh() -> None:
        got.append(await spool.append([row(7)]))

    async with anyio.create_task_group() as tg:
        tg.start_soon(seventh)
        await anyio.wait_all_tasks_blocked()
        assert spool.writer_blocked
        assert got == []
        await spool.commit(2)  # segment 1-3 not fully committed: no space yet
        await anyio.wait_all_tasks_blocked()
        assert spool.writer_blocked
        assert got == []
        await spool.commit(3)
    assert got == [range(7, 8)]
    assert not spool.writer_blocked
    assert spool.rows_dropped == 0
    assert seg_files(tmp_path) == [segment_name(4), segment_name(7)]
    await spool.aclose()


async def test_close_wakes_a_blocked_writer(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=300)
    await spool.append(rows(1, 3))
    with pytest.RaisesGroup(anyio.ClosedResourceError):
        async with anyio.create_task_group() as tg:
            tg.start_soon(spool.append, [row(4)])
            await anyio.wait_all_tasks_blocked()
            await spool.aclose()


async def test_drop_newest_refuses_exactly_the_overflow(tmp_path: Path) -> None:
    with capture_logs() as logs:
        spool = await open_spool(
            tmp_path, segment_bytes=300, max_bytes=600, when_full="drop_newest"
        )
        assert await spool.append(rows(1, 10)) == range(1, 7)
        assert await spool.append([row(11)]) == range(7, 7)
    assert spool.rows_dropped == 5
    assert [s for s, _ in await spool.read(1, 100, 10**9)] == [1, 2, 3, 4, 5, 6]
    dropped = [e for e in logs if e["event"] == "spool_rows_dropped"]
    assert [(e["log_level"], e["rows"], e["after_seq"]) for e in dropped] == [
        ("error", 4, 6),
        ("error", 1, 6),
    ]
    await spool.commit(3)  # frees segment 1-3: room for three more
    assert await spool.append(rows(12, 4)) == range(7, 10)
    assert spool.rows_dropped == 6
    await spool.aclose()


async def test_drop_oldest_drops_exactly_the_oldest_uncommitted_segment(tmp_path: Path) -> None:
    with capture_logs() as logs:
        spool = await open_spool(
            tmp_path, segment_bytes=300, max_bytes=600, when_full="drop_oldest"
        )
        await spool.append(rows(1, 6))
        await spool.commit(1)
        assert await spool.append([row(7)]) == range(7, 8)
    assert spool.rows_dropped == 2  # 2 and 3; 1 was committed, so not lost
    assert spool.first_seq == 4
    assert [s for s, _ in await spool.read(spool.committed + 1, 100, 10**9)] == [4, 5, 6, 7]
    assert [e for e in logs if e["event"] == "spool_rows_dropped"] == [
        {
            "event": "spool_rows_dropped",
            "log_level": "error",
            "lane": "T",
            "first_seq": 2,
            "last_seq": 3,
            "rows": 2,
            "policy": "drop_oldest",
        }
    ]
    await spool.aclose()


async def test_drop_oldest_rolls_the_active_segment_when_it_is_the_only_one(
    tmp_path: Path,
) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=300, when_full="drop_oldest")
    await spool.append(rows(1, 3))
    assert await spool.append(rows(4, 2)) == range(4, 6)
    assert spool.rows_dropped == 3
    assert seg_files(tmp_path) == [segment_name(4)]
    await spool.aclose()


async def test_oversize_row_and_batch_are_typed_errors(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=600)
    with pytest.raises(RecordTooLarge, match="segment_bytes"):
        await spool.append([b"x" * 285])
    with pytest.raises(BatchTooLarge, match="smaller batches"):
        await spool.append(rows(1, 7))
    assert spool.next_seq == 1
    await spool.aclose()


async def test_one_writer_per_lane_and_one_spool_per_directory(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=300, max_bytes=300)
    with pytest.raises(SpoolLocked):
        await open_spool(tmp_path)
    await spool.append(rows(1, 3))
    async with anyio.create_task_group() as tg:
        tg.start_soon(spool.append, [row(4)])  # blocks: full
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(RuntimeError, match="one writer"):
            await spool.append([row(5)])
        await spool.commit(3)
    await spool.aclose()


async def test_wait_for_wakes_a_reader_on_append(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    woke: list[list[int]] = []

    async def reader() -> None:
        await spool.wait_for(1)
        woke.append([s for s, _ in await spool.read(1, 10, 10**9)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        await spool.append(rows(1, 2))
    assert woke == [[1, 2]]
    await spool.aclose()


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


async def test_fsync_always_syncs_every_append_before_returning(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    spool = await open_spool(tmp_path, fsync="always")
    fsyncs.clear()
    for i in range(1, 6):
        await spool.append([row(i)])
        assert len(fsyncs) == i
        assert spool.synced_seq == i
    await spool.aclose()


async def test_fsync_never_never_syncs(tmp_path: Path, fsyncs: list[int]) -> None:
    spool = await open_spool(tmp_path, fsync="never", segment_bytes=300)
    await spool.append(rows(1, 7))  # rolls twice
    await spool.commit(4)
    await spool.aclose()
    assert fsyncs == []


async def test_fsync_interval_syncs_on_the_interval(tmp_path: Path, fsyncs: list[int]) -> None:
    clock = ManualClock()
    spool = await LaneSpool.open(
        tmp_path, SpoolConfig(fsync="interval", fsync_interval_ms=200), clock
    )
    with pytest.raises(RuntimeError, match=r"run\(\)"):
        await spool.append([row(1)])
    fsyncs.clear()
    async with anyio.create_task_group() as tg:
        await tg.start(spool.run)
        written = await spool.append(rows(1, 3))
        await spool.append(rows(4, 3))
        clock.advance(0.19)
        await anyio.wait_all_tasks_blocked()
        assert fsyncs == []
        assert spool.synced_seq == 0
        clock.advance(0.01)
        with anyio.fail_after(5):
            await spool.wait_synced(6)
        assert len(fsyncs) == 1
        clock.advance(0.2)  # nothing new written: no fsync
        await anyio.wait_all_tasks_blocked()
        assert len(fsyncs) == 1
        await spool.append([row(7)])
        clock.advance(0.2)
        with anyio.fail_after(5):
            await spool.wait_synced(7)
        assert len(fsyncs) == 2
        tg.cancel_scope.cancel()
    assert written == range(1, 4)
    await spool.aclose()


def test_config_defaults_and_validation() -> None:
    config = SpoolConfig()
    assert (config.fsync, config.when_full) == ("interval", "block")
    assert SpoolConfig.model_fields["max_bytes"].description
    with pytest.raises(ValidationError, match="segment_bytes"):
        SpoolConfig(segment_bytes=2048, max_bytes=1024)
    with pytest.raises(ValidationError):
        SpoolConfig(when_full="spill")  # type: ignore[arg-type]


async def test_reader_and_committer_run_alongside_the_writer(tmp_path: Path) -> None:
    # Small segments and max_bytes force rolls, commit deletions and block waits throughout.
    spool = await open_spool(tmp_path, segment_bytes=1000, max_bytes=3000)
    total, seen = 500, []

    async def writer() -> None:
        i = 1
        while i <= total:
            n = min(1 + i % 7, total - i + 1)
            assert await spool.append(rows(i, n)) == range(i, i + n)
            i += n

    async def reader() -> None:
        seq = 1
        while seq <= total:
            await spool.wait_for(seq)
            got = await spool.read(seq, 13, 700)
            seen.extend(got)
            seq = got[-1][0] + 1
            await spool.commit(got[-1][0])  # delivered: frees space for the writer

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        tg.start_soon(reader)
    assert seen == list(enumerate(rows(1, total), 1))
    assert spool.bytes_on_disk <= 3000
    await spool.aclose()


async def test_segments_of_the_old_per_row_format_are_refused_not_lost(tmp_path: Path) -> None:
    old = tmp_path / f"{1:020d}.seg"
    old.write_bytes(b"\x01" * 64)
    with pytest.raises(SpoolCorrupt, match=r"old per-row format .*drain them"):
        await open_spool(tmp_path)
    assert old.read_bytes() == b"\x01" * 64  # untouched
