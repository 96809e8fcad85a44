"""Rotation chains: any number of renames between two looks, or while stopped, and copy-truncate.

`paths` names the live file only, as users write it: the rotated names match no glob, so a file
that was live and rotated away before streamd looked is found by its unknown identity. The source
runs on a manual clock, so "between two polls" is exact: the test rotates while it sleeps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.ndjson.config import NdjsonSourceConfig
from streamd.sources.ndjson.source import NdjsonSource
from streamd.sources.synthetic.sequences import FileSequences
from streamd.testing import ManualClock
from tests.helpers import eventually

from .test_source import TABLE, Consumer, append, lines


@asynccontextmanager
async def following(
    tmp_path: Path, consumer: Consumer, clock: ManualClock
) -> AsyncIterator[NdjsonSource]:
    config = NdjsonSourceConfig(
        name="files", paths=[str(tmp_path / "logs" / "app.ndjson")], table=TABLE, drain_timeout_s=0
    )
    source = NdjsonSource(config, tmp_path / "state", None)
    send, receive = anyio.create_memory_object_stream[Envelope](16)
    ctx = SourceContext(send, clock, FileSequences(tmp_path / "seq.json"))
    async with send, anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, receive)
        tg.start_soon(source.run, ctx)
        yield source
        tg.cancel_scope.cancel()


async def idle(clock: ManualClock, consumer: Consumer, rows: int) -> None:
    """Wait until the source has handed over `rows` rows and sleeps until its next poll."""
    await eventually(
        lambda: clock.sleepers == 1 and len(consumer.rows) >= rows,
        within=10,
        interval=0.005,
        what=f"the source idle after {rows} rows",
    )


async def poll_until(clock: ManualClock, consumer: Consumer, rows: int) -> None:
    """Let the source poll until it has `rows` rows, then a few more polls (nothing read twice)."""
    with anyio.fail_after(10):
        while len(consumer.rows) < rows:
            await idle(clock, consumer, 0)
            clock.advance(1)
            await anyio.lowlevel.checkpoint()
    for _ in range(4):  # rotated files are closed after two polls without data
        await idle(clock, consumer, rows)
        clock.advance(1)
    await idle(clock, consumer, rows)


def rotate(logs: Path, first_id: int, count: int) -> None:
    """logrotate's default: .N → .N+1, the live file → .1, a new live file with `count` lines."""
    live = logs / "app.ndjson"
    numbered = sorted(
        (int(p.name.rsplit(".", 1)[1]), p)
        for p in logs.glob("app.ndjson.*")
        if p.suffix[1:].isdigit()
    )
    for n, path in reversed(numbered):
        os.rename(path, logs / f"app.ndjson.{n + 1}")
    os.rename(live, logs / "app.ndjson.1")
    live.write_bytes(lines(*range(first_id, first_id + count)))


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    return tmp_path / "logs"


@pytest.mark.parametrize("rotations", [1, 2, 5])
async def test_rotations_between_two_polls_lose_nothing(
    tmp_path: Path, logs: Path, rotations: int
) -> None:
    (logs / "app.ndjson").write_bytes(lines(*range(100)))
    clock, consumer = ManualClock(), Consumer()
    async with following(tmp_path, consumer, clock):
        await idle(clock, consumer, 100)
        for r in range(rotations):
            rotate(logs, 100 + 50 * r, 50)
        await poll_until(clock, consumer, 100 + 50 * rotations)
    assert consumer.ids() == list(range(100 + 50 * rotations))


@pytest.mark.parametrize("rotations", [1, 2, 5])
async def test_rotations_while_stopped_lose_nothing(
    tmp_path: Path, logs: Path, rotations: int
) -> None:
    (logs / "app.ndjson").write_bytes(lines(*range(100)))
    clock, first = ManualClock(), Consumer()
    async with following(tmp_path, first, clock):
        await idle(clock, first, 100)
    append(logs / "app.ndjson", lines(*range(100, 110)))  # written after the stop, then rotated
    for r in range(rotations):
        rotate(logs, 110 + 50 * r, 50)
    clock, second = ManualClock(), Consumer()
    async with following(tmp_path, second, clock):
        await poll_until(clock, second, 10 + 50 * rotations)
    assert first.ids() + second.ids() == list(range(110 + 50 * rotations))
    # Everything accounted for: a third run reads nothing again.
    clock, third = ManualClock(), Consumer()
    async with following(tmp_path, third, clock):
        await poll_until(clock, third, 0)
    assert third.rows == []


async def test_rotated_files_present_at_the_first_look_are_history(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "app.ndjson.2").write_bytes(lines(-2))
    (logs / "app.ndjson.1").write_bytes(lines(-1))
    (logs / "app.ndjson.3.gz").write_bytes(b"\x1f\x8b not ndjson")
    (logs / "app.ndjson").write_bytes(lines(0, 1))
    clock, consumer = ManualClock(), Consumer()
    async with following(tmp_path, consumer, clock):
        await idle(clock, consumer, 2)
        rotate(logs, 2, 3)
        await poll_until(clock, consumer, 5)
    assert consumer.ids() == [0, 1, 2, 3, 4]


async def test_copy_truncate_keeps_lines_written_after_the_last_read(
    tmp_path: Path, logs: Path
) -> None:
    live = logs / "app.ndjson"
    live.write_bytes(lines(*range(100)))
    clock, consumer = ManualClock(), Consumer()
    async with following(tmp_path, consumer, clock):
        await idle(clock, consumer, 100)
        append(live, lines(*range(100, 110)))  # unread when the copy is taken
        shutil.copyfile(live, logs / "app.ndjson.1")
        with live.open("r+b") as f:
            f.truncate(0)
        append(live, lines(*range(110, 115)))
        await poll_until(clock, consumer, 115)
    assert consumer.ids() == list(range(115))
