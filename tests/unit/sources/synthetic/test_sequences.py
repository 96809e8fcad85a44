"""Durable sequence blocks: ids never repeat across restarts."""

from __future__ import annotations

from pathlib import Path

import anyio

from streamd.sources.synthetic.sequences import FileSequences
from streamd.testing import ManualClock

# Wall clock at the epoch: ids start at 0, as they would on a file that outlives every start.
EPOCH = ManualClock(start_wall=0.0)


async def test_blocks_are_disjoint_and_survive_restart(tmp_path: Path) -> None:
    """A new allocator on the same file starts above every block handed out before."""
    path = tmp_path / "sequences.json"
    first = FileSequences(path, block=100, clock=EPOCH)
    a = await first.reserve("sensor-EQ-0001")
    b = await first.reserve("sensor-EQ-0001")
    other = await first.reserve("quality-PRD-001")
    assert (a, b, other) == (range(0, 100), range(100, 200), range(0, 100))

    restarted = FileSequences(path, block=100, clock=EPOCH)
    assert await restarted.reserve("sensor-EQ-0001") == range(200, 300)
    assert await restarted.reserve("quality-PRD-001") == range(100, 200)


async def test_concurrent_reservations_share_writes(tmp_path: Path) -> None:
    """Producers starting together are made durable by a few group writes, not one fsync each."""
    path = tmp_path / "sequences.json"
    sequences = FileSequences(path, block=10, clock=EPOCH)
    writes = 0
    real_write = sequences._write

    def counting_write(marks: dict[str, int]) -> None:
        nonlocal writes
        writes += 1
        real_write(marks)

    sequences._write = counting_write  # type: ignore[method-assign]
    got: dict[str, range] = {}

    async def take(name: str) -> None:
        got[name] = await sequences.reserve(name)

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(take, f"p{i}")
    assert len(got) == 200
    assert all(r == range(0, 10) for r in got.values())
    assert writes <= 3
    restarted = FileSequences(path, block=10, clock=EPOCH)
    assert await restarted.reserve("p199") == range(10, 20)


async def test_ids_stay_unique_when_the_file_is_lost_or_restored_from_an_old_backup(
    tmp_path: Path,
) -> None:
    """Each start numbers from at least its wall-clock microseconds: a lost or old file repeats nothing."""
    path = tmp_path / "sequences.json"
    clock = ManualClock(start_wall=1_765_000_000.0)
    first = FileSequences(path, block=1000, clock=clock)
    used = [await first.reserve("sensor-EQ-0002") for _ in range(3)]
    backup = path.read_bytes()
    assert used[0].start == 1_765_000_000_000_000

    clock.advance(1)
    path.unlink()  # the state directory is gone: a new disk, a container without its volume
    second = FileSequences(path, block=1000, clock=clock)
    after_loss = await second.reserve("sensor-EQ-0002")
    assert after_loss.start >= used[-1].stop

    clock.advance(1)
    path.write_bytes(backup)  # restored from the backup taken before the second life
    third = FileSequences(path, block=1000, clock=clock)
    after_restore = await third.reserve("sensor-EQ-0002")
    assert after_restore.start >= after_loss.stop
