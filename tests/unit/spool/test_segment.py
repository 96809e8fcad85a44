"""Segment framing, reading and torn-tail recovery, at the file level."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamd.spool.chunk import HEADER_SIZE, RowRun, chunk_size, encode
from streamd.spool.errors import SpoolCorrupt
from streamd.spool.segment import (
    INDEX_EVERY,
    Segment,
    parse_segment_name,
    read_run,
    segment_name,
)


def rows(first: int, n: int) -> list[bytes]:
    return [b'{"n":%d,"p":"%s"}' % (i, b"x" * (i % 50)) for i in range(first, first + n)]


def write_segment(directory: Path, first_seq: int, chunks: list[list[bytes]]) -> Segment:
    """A closed segment holding `chunks` (one append each), seqs from `first_seq`."""
    segment = Segment.create(directory, first_seq, sync=False)
    for lines in chunks:
        header, payload = encode(lines, segment.next_seq)
        segment.write(header, payload, fsync=False)
        segment.added(len(lines), len(header) + len(payload))
    segment.close(fsync=False)
    return segment


def read(segment: Segment, from_seq: int, max_rows: int = 10**9, max_bytes: int = 10**12) -> RowRun:
    seq, offset = segment.seek_hint(from_seq)
    run = RowRun(from_seq, max_rows, max_bytes)
    read_run(segment.path, seq, offset, segment.size, run)
    return run


def read_all(segment: Segment, from_seq: int) -> list[tuple[int, bytes]]:
    return read(segment, from_seq).lines()


def split(lines: list[bytes], *sizes: int) -> list[list[bytes]]:
    out, at = [], 0
    for size in sizes:
        out.append(lines[at : at + size])
        at += size
    assert at == len(lines)
    return out


def test_names_sort_numerically_and_parse_back() -> None:
    names = [segment_name(n) for n in (10, 9, 100, 1)]
    assert sorted(names) == [segment_name(n) for n in (1, 9, 10, 100)]
    assert parse_segment_name(segment_name(123)) == 123
    assert parse_segment_name("committed") is None
    assert parse_segment_name("123.chunks") is None
    assert parse_segment_name(f"{1:020d}.seg") is None  # the old per-row format


def test_a_chunk_is_one_header_and_the_ndjson_body() -> None:
    lines = rows(1, 3)
    header, payload = encode(lines, 1)
    assert len(header) == HEADER_SIZE
    assert payload == b"\n".join(lines) + b"\n"
    assert chunk_size(lines) == HEADER_SIZE + len(payload)
    with pytest.raises(ValueError, match="raw newline"):
        encode([b'{"a":1}\n{"b":2}'], 1)


def test_round_trip_and_read_from_any_seq_across_chunk_sizes(tmp_path: Path) -> None:
    lines = rows(1, 3 * INDEX_EVERY + 5)
    # Chunks of one row, of many, and one spanning an index boundary.
    chunks = split(lines, 1, 1, 70, 3, INDEX_EVERY, 1, len(lines) - 75 - INDEX_EVERY - 1)
    segment = write_segment(tmp_path, 1, chunks)
    assert segment.size == sum(map(chunk_size, chunks)) == segment.path.stat().st_size
    assert segment.count == len(lines)
    # Sparse: the first chunk, and the next chunks starting ≥ INDEX_EVERY rows further on.
    assert list(segment.index_seqs) == [1, 73, 140]
    for start in (1, 2, 3, 72, 73, 74, INDEX_EVERY + 1, 140, 141, 3 * INDEX_EVERY + 5):
        assert read_all(segment, start) == list(enumerate(lines, 1))[start - 1 :], start


def test_read_limits_rows_and_bytes_but_always_returns_one(tmp_path: Path) -> None:
    lines = rows(1, 10)
    segment = write_segment(tmp_path, 1, split(lines, 4, 6))
    run = read(segment, 3, max_rows=4)
    assert (run.first, run.rows, run.last) == (3, 4, 6)
    assert run.body() == b"".join(line + b"\n" for line in lines[2:6])
    budget = len(lines[2]) + len(lines[3]) + 2  # bytes of the body, newlines included
    assert [s for s, _ in read(segment, 3, max_bytes=budget).lines()] == [3, 4]
    assert [s for s, _ in read(segment, 3, max_bytes=budget - 1).lines()] == [3]
    assert [s for s, _ in read(segment, 3, max_bytes=1).lines()] == [3]
    # A whole chunk within the limits is taken as it is (no copy), then the next is cut.
    run = read(segment, 1, max_rows=5)
    assert run.rows == 5
    assert run.body() == b"".join(line + b"\n" for line in lines[:5])


def test_recover_intact_segment_keeps_everything(tmp_path: Path) -> None:
    lines = rows(7, 100)
    write_segment(tmp_path, 7, split(lines, 10, 60, 30))
    segment, torn = Segment.recover(tmp_path / segment_name(7), 7, sync=False)
    assert torn is None
    assert (segment.count, segment.next_seq) == (100, 107)
    assert list(segment.index_seqs) == [7, 77]
    assert read_all(segment, 50) == list(enumerate(lines, 7))[43:]


@pytest.mark.parametrize(
    ("cut_into_last", "label"),
    [(HEADER_SIZE + 3, "mid-payload"), (5, "mid-header")],
)
def test_truncated_tail_drops_the_torn_chunk_and_earlier_ones_survive(
    tmp_path: Path, cut_into_last: int, label: str
) -> None:
    lines = rows(1, 10)
    chunks = split(lines, 4, 5, 1)
    write_segment(tmp_path, 1, chunks)
    path = tmp_path / segment_name(1)
    intact = chunk_size(chunks[0]) + chunk_size(chunks[1])
    with path.open("r+b") as f:
        f.truncate(intact + cut_into_last)

    segment, torn = Segment.recover(path, 1, sync=False)

    assert torn is not None, label
    assert (torn.valid_bytes, torn.bytes_dropped, torn.frames_dropped) == (intact, cut_into_last, 1)
    assert torn.first_lost_seq == 10
    assert path.stat().st_size == intact
    assert segment.count == 9
    assert read_all(segment, 1) == list(enumerate(lines[:9], 1))


@pytest.mark.parametrize("where", ["payload", "seq", "count", "length", "newline"])
def test_a_corrupt_last_chunk_is_dropped_whole(tmp_path: Path, where: str) -> None:
    lines = rows(1, 6)
    chunks = split(lines, 4, 2)
    write_segment(tmp_path, 1, chunks)
    path = tmp_path / segment_name(1)
    last = chunk_size(chunks[0])
    offset = {
        "payload": last + HEADER_SIZE + 2,
        "seq": last + 8,
        "count": last + 16,
        "length": last,
        "newline": last + chunk_size(chunks[1]) - 1,
    }[where]
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))

    segment, torn = Segment.recover(path, 1, sync=False)

    assert torn is not None
    assert torn.bytes_dropped == chunk_size(chunks[1])
    assert segment.count == 4
    assert read_all(segment, 1) == list(enumerate(lines[:4], 1))


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    lines = rows(1, 3)
    write_segment(tmp_path, 1, [lines])
    path = tmp_path / segment_name(1)
    with path.open("ab") as f:
        f.write(b"\0" * 4096)  # what some filesystems show after a power cut
    segment, torn = Segment.recover(path, 1, sync=False)
    assert torn is not None
    assert torn.bytes_dropped == 4096
    assert segment.count == 3


def test_read_detects_corruption_after_open(tmp_path: Path) -> None:
    lines = rows(1, 3)
    segment = write_segment(tmp_path, 1, [lines])
    data = bytearray(segment.path.read_bytes())
    data[HEADER_SIZE + 1] ^= 0xFF
    segment.path.write_bytes(bytes(data))
    with pytest.raises(SpoolCorrupt, match="checksum"):
        read_all(segment, 1)


def test_chunks_wholly_before_the_read_are_skipped_by_their_headers(tmp_path: Path) -> None:
    lines = rows(1, 6)
    chunks = split(lines, 3, 3)
    segment = write_segment(tmp_path, 1, chunks)
    data = bytearray(segment.path.read_bytes())
    data[HEADER_SIZE + 1] ^= 0xFF  # corrupt the first chunk's payload: never read from seq 4
    segment.path.write_bytes(bytes(data))
    assert read_all(segment, 4) == list(enumerate(lines, 1))[3:]
