"""Durable sequence blocks: ids never repeat across restarts."""

from __future__ import annotations

from pathlib import Path

import anyio

from streamd.sources.synthetic.sequences import FileSequences


async def test_blocks_are_disjoint_and_survive_restart(tmp_path: Path) -> None:
    """A new allocator on the same file starts above every block handed out before."""
    path = tmp_path / "sequences.json"
    first = FileSequences(path, block=100)
    a = await first.reserve("sensor-EQ-0001")
    b = await first.reserve("sensor-EQ-0001")
    other = await first.reserve("quality-PRD-001")
    assert (a, b, other) == (range(0, 100), range(100, 200), range(0, 100))

    restarted = FileSequences(path, block=100)
    assert await restarted.reserve("sensor-EQ-0001") == range(200, 300)
    assert await restarted.reserve("quality-PRD-001") == range(100, 200)


async def test_concurrent_reservations_share_writes(tmp_path: Path) -> None:
    """Producers starting together are made durable by a few group writes, not one fsync each."""
    path = tmp_path / "sequences.json"
    sequences = FileSequences(path, block=10)
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
    restarted = FileSequences(path, block=10)
    assert await restarted.reserve("p199") == range(10, 20)
