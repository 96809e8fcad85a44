"""Durable sequence blocks: ids never repeat across restarts."""

from __future__ import annotations

from pathlib import Path

from streamd.sources.sequences import FileSequences


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
