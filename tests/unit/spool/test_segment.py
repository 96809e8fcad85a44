"""Segment framing, reading and torn-tail recovery, at the file level."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamd.spool.errors import SpoolCorrupt
from streamd.spool.segment import (
    HEADER_SIZE,
    INDEX_EVERY,
    Segment,
    encode,
    framed_size,
    parse_segment_name,
    read_records,
    segment_name,
)


def rows(first: int, n: int) -> list[bytes]:
    return [b'{"n":%d,"p":"%s"}' % (i, b"x" * (i % 50)) for i in range(first, first + n)]


def write_segment(directory: Path, first_seq: int, lines: list[bytes]) -> Segment:
    segment = Segment.create(directory, first_seq, sync=False)
    buf, index = encode(lines, first_seq, first_seq, 0)
    segment.write(buf, fsync=False)
    segment.added(len(lines), len(buf), index)
    segment.close(fsync=False)
    return segment


def read_all(segment: Segment, from_seq: int) -> list[tuple[int, bytes]]:
    seq, offset = segment.seek_hint(from_seq)
    return read_records(segment.path, seq, offset, segment.size, from_seq, 10**9, 10**12)


def test_names_sort_numerically_and_parse_back() -> None:
    names = [segment_name(n) for n in (10, 9, 100, 1)]
    assert sorted(names) == [segment_name(n) for n in (1, 9, 10, 100)]
    assert parse_segment_name(segment_name(123)) == 123
    assert parse_segment_name("committed") is None
    assert parse_segment_name("123.seg") is None


def test_round_trip_and_read_from_any_seq(tmp_path: Path) -> None:
    lines = rows(1, 3 * INDEX_EVERY + 5)
    segment = write_segment(tmp_path, 1, lines)
    assert segment.size == framed_size(lines) == tmp_path.joinpath(segment_name(1)).stat().st_size
    assert len(segment.index) == 4
    for start in (1, 2, INDEX_EVERY, INDEX_EVERY + 1, 3 * INDEX_EVERY + 5):
        got = read_all(segment, start)
        assert got == list(enumerate(lines, 1))[start - 1 :]


def test_read_limits_rows_and_bytes_but_always_returns_one(tmp_path: Path) -> None:
    lines = rows(1, 10)
    segment = write_segment(tmp_path, 1, lines)
    assert [s for s, _ in read_records(segment.path, 1, 0, segment.size, 3, 4, 10**9)] == [
        3,
        4,
        5,
        6,
    ]
    budget = len(lines[2]) + len(lines[3])
    assert [s for s, _ in read_records(segment.path, 1, 0, segment.size, 3, 99, budget)] == [3, 4]
    assert [s for s, _ in read_records(segment.path, 1, 0, segment.size, 3, 99, 1)] == [3]


def test_recover_intact_segment_keeps_everything(tmp_path: Path) -> None:
    lines = rows(7, 100)
    write_segment(tmp_path, 7, lines)
    segment, torn = Segment.recover(tmp_path / segment_name(7), 7, sync=False)
    assert torn is None
    assert (segment.count, segment.next_seq) == (100, 107)
    assert read_all(segment, 50) == list(enumerate(lines, 7))[43:]


@pytest.mark.parametrize(
    ("cut_into_last", "label"),
    [(HEADER_SIZE + 3, "mid-payload"), (5, "mid-header")],
)
def test_truncated_tail_is_cut_and_earlier_records_survive(
    tmp_path: Path, cut_into_last: int, label: str
) -> None:
    lines = rows(1, 10)
    write_segment(tmp_path, 1, lines)
    path = tmp_path / segment_name(1)
    intact = framed_size(lines[:9])
    with path.open("r+b") as f:
        f.truncate(intact + cut_into_last)

    segment, torn = Segment.recover(path, 1, sync=False)

    assert torn is not None, label
    assert (torn.valid_bytes, torn.bytes_dropped, torn.frames_dropped) == (intact, cut_into_last, 1)
    assert torn.first_lost_seq == 10
    assert path.stat().st_size == intact
    assert segment.count == 9
    assert read_all(segment, 1) == list(enumerate(lines[:9], 1))


@pytest.mark.parametrize("where", ["payload", "seq", "length"])
def test_corrupt_last_record_is_dropped(tmp_path: Path, where: str) -> None:
    lines = rows(1, 5)
    write_segment(tmp_path, 1, lines)
    path = tmp_path / segment_name(1)
    last = framed_size(lines[:4])
    offset = {"payload": last + HEADER_SIZE + 2, "seq": last + 8, "length": last}[where]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))

    segment, torn = Segment.recover(path, 1, sync=False)

    assert torn is not None
    assert torn.bytes_dropped == HEADER_SIZE + len(lines[4])
    assert segment.count == 4
    assert read_all(segment, 1) == list(enumerate(lines[:4], 1))


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    lines = rows(1, 3)
    write_segment(tmp_path, 1, lines)
    path = tmp_path / segment_name(1)
    with path.open("ab") as f:
        f.write(b"\0" * 4096)  # what some filesystems show after a power cut
    segment, torn = Segment.recover(path, 1, sync=False)
    assert torn is not None
    assert torn.bytes_dropped == 4096
    assert segment.count == 3


def test_read_detects_corruption_after_open(tmp_path: Path) -> None:
    lines = rows(1, 3)
    segment = write_segment(tmp_path, 1, lines)
    data = bytearray(segment.path.read_bytes())
    data[HEADER_SIZE + 1] ^= 0xFF
    segment.path.write_bytes(bytes(data))
    with pytest.raises(SpoolCorrupt, match="checksum"):
        read_all(segment, 1)
