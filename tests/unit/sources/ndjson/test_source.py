"""NDJSON tail source: reading, appending, rotation, truncation, durable positions, bad lines."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import SystemClock
from streamd.rows import Envelope, Row
from streamd.sources.base import SourceContext
from streamd.sources.ndjson.config import NdjsonSourceConfig
from streamd.sources.ndjson.position import AckTracker, PositionStore
from streamd.sources.ndjson.source import NdjsonSource
from streamd.sources.synthetic.sequences import FileSequences
from tests.helpers import DeadLetterRecorder, eventually

TABLE = "DB.RAW.EVENTS"


class Consumer:
    """Plays the pipeline: takes envelopes and acks them (or holds them when `hold` is set)."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.held: list[Envelope] = []
        self.hold = False
        self.seq = 0

    async def run(self, receive: MemoryObjectReceiveStream[Envelope]) -> None:
        async with receive:
            async for envelope in receive:
                self.rows.append(envelope.row)
                if self.hold:
                    self.held.append(envelope)
                else:
                    self.seq += 1
                    assert envelope.ack is not None
                    envelope.ack(self.seq)

    def ids(self) -> list[Any]:
        return [r["id"] for r in self.rows]


def lines(*ids: int) -> bytes:
    return b"".join(orjson.dumps({"id": i}) + b"\n" for i in ids)


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@asynccontextmanager
async def tailing(
    tmp_path: Path, consumer: Consumer, dead: DeadLetterRecorder | None = None, **kw: Any
) -> AsyncIterator[NdjsonSource]:
    config = NdjsonSourceConfig(
        name="files",
        paths=[str(tmp_path / "logs" / "*.ndjson")],
        table=TABLE,
        poll_interval_ms=10,
        drain_timeout_s=kw.pop("drain_timeout_s", 0),
        **kw,
    )
    source = NdjsonSource(config, tmp_path / "state", dead)
    send, receive = anyio.create_memory_object_stream[Envelope](16)
    ctx = SourceContext(send, SystemClock(), FileSequences(tmp_path / "seq.json"))
    async with send, anyio.create_task_group() as tg:
        tg.start_soon(consumer.run, receive)
        tg.start_soon(source.run, ctx)
        yield source
        tg.cancel_scope.cancel()


async def restart_reads(
    tmp_path: Path, path: Path, marker: int, dead: DeadLetterRecorder | None = None
) -> list[Any]:
    """Restart the source and append line `marker` to `path`: the ids read once it has arrived.

    A file is read in order, so anything read again would arrive before the marker: no sleeping
    and hoping that nothing comes.
    """
    again = Consumer()
    async with tailing(tmp_path, again, dead):
        append(path, lines(marker))
        await eventually(lambda: marker in again.ids())
    return again.ids()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    return tmp_path / "logs"


async def test_reads_existing_and_appended_lines_and_new_files(tmp_path: Path, logs: Path) -> None:
    (logs / "a.ndjson").write_bytes(lines(1, 2))
    (logs / "ignored.txt").write_bytes(lines(99))
    consumer = Consumer()
    async with tailing(tmp_path, consumer):
        await eventually(lambda: consumer.ids() == [1, 2])
        append(logs / "a.ndjson", lines(3) + b'{"id": 4')  # the partial line waits for its end
        await eventually(lambda: consumer.ids() == [1, 2, 3])
        append(logs / "a.ndjson", b"}\n")
        (logs / "b.ndjson").write_bytes(lines(5))
        await eventually(lambda: sorted(consumer.ids()) == [1, 2, 3, 4, 5])
    assert consumer.ids() == [1, 2, 3, 4, 5]


async def test_bad_lines_go_to_dead_letters_and_position_moves_past_them(
    tmp_path: Path, logs: Path
) -> None:
    (logs / "a.ndjson").write_bytes(
        lines(1) + b"not json\n[1, 2]\n" + b'{"id": "' + b"x" * 100 + b'"}\n\n' + lines(2)
    )
    consumer, dead = Consumer(), DeadLetterRecorder()
    async with tailing(tmp_path, consumer, dead, max_line_bytes=64):
        await eventually(lambda: consumer.ids() == [1, 2] and len(dead.records) == 3)
    assert [d["rule"] for d in dead.records] == ["invalid_json", "not_an_object", "row_too_large"]
    assert dead.records[0]["row"] == {"_raw": "not json"}
    assert dead.records[0]["position"] == f"{logs / 'a.ndjson'}:9"
    assert {d["table"] for d in dead.records} == {TABLE}
    # Restart: nothing is read again, neither rows nor bad lines.
    dead2 = DeadLetterRecorder()
    assert await restart_reads(tmp_path, logs / "a.ndjson", 3, dead2) == [3]
    assert dead2.records == []


async def test_over_long_line_without_newline_yet_is_skipped_to_its_end(
    tmp_path: Path, logs: Path
) -> None:
    consumer, dead = Consumer(), DeadLetterRecorder()
    (logs / "a.ndjson").write_bytes(b"{" + b"y" * 200)
    async with tailing(tmp_path, consumer, dead, max_line_bytes=64):
        await eventually(lambda: len(dead.records) == 1)
        append(logs / "a.ndjson", b"z" * 50 + b"}\n" + lines(7))
        await eventually(lambda: consumer.ids() == [7])
    assert len(dead.records) == 1
    assert len(dead.records[0]["row"]["_raw"]) == 64


async def test_rotation_finishes_the_old_file_then_follows_the_new_one(
    tmp_path: Path, logs: Path
) -> None:
    current = logs / "app.ndjson"
    current.write_bytes(lines(1, 2))
    consumer = Consumer()
    async with tailing(tmp_path, consumer):
        await eventually(lambda: consumer.ids() == [1, 2])
        with current.open("ab") as writer:
            os.rename(current, logs / "app.ndjson.1")  # no longer matches the glob
            writer.write(lines(3) + b'{"id": 4}')  # the old writer finishes, last line unterminated
        current.write_bytes(lines(5, 6))
        await eventually(lambda: len(consumer.rows) >= 6)
        append(current, lines(7))  # read after anything repeated: nothing came twice
        await eventually(lambda: 7 in consumer.ids())
    assert consumer.ids() == [1, 2, 3, 4, 5, 6, 7]


async def test_a_file_rotated_while_stopped_is_finished_before_the_new_one(
    tmp_path: Path, logs: Path
) -> None:
    current = logs / "app.ndjson"
    current.write_bytes(lines(1, 2))
    first = Consumer()
    async with tailing(tmp_path, first):
        await eventually(lambda: first.ids() == [1, 2])
    # Stopped: the writer appends, the file is rotated away (out of the glob), a new one begins.
    append(current, lines(3, 4))
    os.rename(current, logs / "app.ndjson.1")
    current.write_bytes(lines(5))
    second = Consumer()
    async with tailing(tmp_path, second):
        await eventually(lambda: len(second.rows) >= 3)
        append(current, lines(6))  # read after anything repeated: nothing came twice
        await eventually(lambda: 6 in second.ids())
    assert second.ids() == [3, 4, 5, 6]
    # Finished and forgotten: a third run reads nothing again, only what is appended after it.
    assert await restart_reads(tmp_path, current, 7) == [7]


async def test_truncation_restarts_the_file_at_zero(tmp_path: Path, logs: Path) -> None:
    path = logs / "a.ndjson"
    path.write_bytes(lines(1, 2, 3))
    consumer = Consumer()
    async with tailing(tmp_path, consumer):
        await eventually(lambda: consumer.ids() == [1, 2, 3])
        with path.open("r+b") as f:
            f.truncate(0)
        await anyio.sleep(0.1)
        append(path, lines(10))
        await eventually(lambda: consumer.ids() == [1, 2, 3, 10])
    positions = PositionStore(tmp_path / "state" / "positions.json").load()
    assert positions is not None
    assert [p.offset for p in positions.values()] == [len(lines(10))]


async def test_restart_resumes_after_the_last_acked_line(tmp_path: Path, logs: Path) -> None:
    path = logs / "a.ndjson"
    path.write_bytes(lines(1, 2, 3))
    first = Consumer()
    async with tailing(tmp_path, first):
        await eventually(lambda: first.ids() == [1, 2, 3])
        first.hold = True  # lines 4 and 5 are sent but their acks never come (a crash)
        append(path, lines(4, 5))
        await eventually(lambda: first.ids() == [1, 2, 3, 4, 5])
    second = Consumer()
    async with tailing(tmp_path, second):
        await eventually(lambda: second.ids() == [4, 5])  # re-read: no gap
        append(path, lines(6))
        await eventually(lambda: second.ids() == [4, 5, 6])
    third = Consumer()
    async with tailing(tmp_path, third):
        append(path, lines(7))
        await eventually(lambda: third.ids() == [7])  # acked lines are never repeated
        append(path, lines(8))  # read after anything repeated
        await eventually(lambda: 8 in third.ids())
    assert third.ids() == [7, 8]


async def test_acks_out_of_order_advance_only_the_contiguous_prefix() -> None:
    tracker = AckTracker(0)
    a, b, c = tracker.add(10), tracker.add(20), tracker.add(30)
    assert not tracker.mark(b)
    assert tracker.committed == 0
    assert tracker.mark(a)
    assert tracker.committed == 20
    assert not tracker.mark(a)  # a repeated ack is ignored
    assert tracker.mark(c)
    assert tracker.committed == 30
    assert tracker.pending == 0


async def test_shutdown_waits_for_outstanding_acks(tmp_path: Path, logs: Path) -> None:
    path = logs / "a.ndjson"
    path.write_bytes(lines(1, 2))
    consumer = Consumer()
    consumer.hold = True

    async def release_later() -> None:
        await anyio.sleep(0.2)
        for envelope in consumer.held:
            assert envelope.ack is not None
            envelope.ack(1)

    async with anyio.create_task_group() as tg, tailing(tmp_path, consumer, drain_timeout_s=5):
        await eventually(lambda: consumer.ids() == [1, 2])
        tg.start_soon(release_later)
    # The acks made it into the position: a restart reads only what is appended after it.
    assert await restart_reads(tmp_path, path, 3) == [3]


async def test_start_at_end_reads_only_what_is_appended(tmp_path: Path, logs: Path) -> None:
    path = logs / "a.ndjson"
    path.write_bytes(lines(1, 2))
    consumer = Consumer()
    async with tailing(tmp_path, consumer, start_at="end"):
        await eventually(lambda: (tmp_path / "state" / "positions.json").exists())
        append(path, lines(3))
        await eventually(lambda: consumer.ids() == [3])


async def test_a_replaced_file_with_a_reused_identity_is_read_from_the_start(
    tmp_path: Path, logs: Path
) -> None:
    path = logs / "a.ndjson"
    path.write_bytes(lines(1, 2))
    consumer = Consumer()
    async with tailing(tmp_path, consumer):
        await eventually(lambda: consumer.ids() == [1, 2])
    path.write_bytes(lines(8, 9, 10))  # same inode, other content (as after a delete + reuse)
    again = Consumer()
    async with tailing(tmp_path, again):
        await eventually(lambda: again.ids() == [8, 9, 10])


def test_config_requires_a_qualified_table() -> None:
    with pytest.raises(ValueError, match="table"):
        NdjsonSourceConfig(paths=["*.ndjson"], table="EVENTS")
    assert NdjsonSourceConfig(paths=["x"], table=TABLE).tables() == [TABLE]
