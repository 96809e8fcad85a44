"""One spool segment: a file `<first_seq:020d>.chunks` of framed chunks (see `chunk.py`).

Seqs run on from chunk to chunk from the number in the file name; recovery checks that, which
catches the zero-filled tails some filesystems leave after a power cut. (The per-row frames of
the first format lived in `.seg` files, which this version refuses: `_files.py`.)

Every method that touches the disk blocks: the spool calls them from worker threads. The
bookkeeping (`count`, `size`, index) is changed only by the spool on the event loop, after the
thread that wrote the bytes has returned, so a concurrent reader never sees a half-written chunk.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from streamd.spool.chunk import HEADER, HEADER_SIZE, RowRun, checksum_ok
from streamd.spool.errors import SpoolCorrupt

SUFFIX = ".chunks"
OLD_SUFFIX = ".seg"
INDEX_EVERY = 64
"""A chunk is indexed when it starts this many rows past the last indexed one, so a read skips at
most this many rows' worth of chunk headers from the nearest index entry."""

_READ_BUFFER = 256 * 1024


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is `first_seq` (sorts numerically)."""
    return f"{first_seq:020d}{SUFFIX}"


def parse_segment_name(name: str, suffix: str = SUFFIX) -> int | None:
    """The first sequence number a segment file name stands for; None for other files."""
    stem, dot, ext = name.partition(".")
    if dot + ext != suffix or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


@dataclass(frozen=True, slots=True)
class TornTail:
    """What recovery cut off the end of one segment."""

    path: Path
    valid_bytes: int
    """The segment's size after the cut: every record before it is intact."""
    bytes_dropped: int
    frames_dropped: int
    """Frames walked by their length fields from the cut; a torn frame counts once (best effort)."""
    first_lost_seq: int


class Segment:
    """Where one segment file is, how much of it is valid, and (for the active one) its writer fd."""

    def __init__(self, path: Path, first_seq: int) -> None:
        self.path = path
        self.first_seq = first_seq
        self.count = 0
        self.size = 0
        # Sparse index: (first seq, file offset) of some chunks, in parallel arrays for bisect.
        self.index_seqs = array("Q")
        self.index_offsets = array("Q")
        self.fd: int | None = None

    def __repr__(self) -> str:
        return f"<Segment {self.path.name} records={self.count} bytes={self.size}>"

    @property
    def next_seq(self) -> int:
        """The seq the next record appended here would get."""
        return self.first_seq + self.count

    @property
    def last_seq(self) -> int:
        """The seq of the last record (first_seq - 1 when empty)."""
        return self.first_seq + self.count - 1

    def added(self, rows: int, nbytes: int) -> None:
        """Record that one chunk of `rows` rows and `nbytes` was written at the end (event loop)."""
        first = self.next_seq
        if not self.index_seqs or first >= self.index_seqs[-1] + INDEX_EVERY:
            self.index_seqs.append(first)
            self.index_offsets.append(self.size)
        # size last: a reader snapshots size, and everything below it must already be counted.
        self.count += rows
        self.size += nbytes

    def seek_hint(self, seq: int) -> tuple[int, int]:
        """The nearest indexed (first seq, offset) of a chunk at or before `seq`."""
        slot = bisect_right(self.index_seqs, seq) - 1
        if slot < 0:
            return self.first_seq, 0
        return self.index_seqs[slot], self.index_offsets[slot]

    # ---- blocking operations (worker threads) -------------------------------------------------

    @classmethod
    def create(cls, directory: Path, first_seq: int, *, sync: bool) -> Segment:
        """Create an empty segment file and open it for appending."""
        segment = cls(directory / segment_name(first_seq), first_seq)
        segment.open_writer()
        if sync:
            sync_directory(directory)
        return segment

    @classmethod
    def recover(cls, path: Path, first_seq: int, *, sync: bool) -> tuple[Segment, TornTail | None]:
        """Validate every chunk; truncate the file at the first bad one and say what was cut."""
        segment = cls(path, first_seq)
        data = path.read_bytes()
        total = len(data)
        pos = 0
        seq = first_seq
        while pos + HEADER_SIZE <= total:
            length, _, chunk_first, count = HEADER.unpack_from(data, pos)
            end = pos + HEADER_SIZE + length
            if chunk_first != seq or count == 0 or end > total:
                break
            payload = data[pos + HEADER_SIZE : end]
            if not checksum_ok(data[pos : pos + HEADER_SIZE], payload):
                break
            if payload.count(b"\n") != count or not payload.endswith(b"\n"):
                break
            segment.added(count, end - pos)
            pos = end
            seq += count
        if pos == total:
            return segment, None
        torn = TornTail(path, pos, total - pos, _count_frames(data, pos), seq)
        with path.open("r+b") as f:
            f.truncate(pos)
            if sync:
                os.fsync(f.fileno())
        return segment, torn

    def open_writer(self) -> None:
        """Open (creating if needed) the file for appending."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(self.path, flags, 0o644)

    def write(self, header: bytes, payload: bytes, *, fsync: bool) -> None:
        """Write one chunk at the end of the file (one `writev`), then fsync it if asked."""
        assert self.fd is not None, "segment is not open for writing"
        written = os.writev(self.fd, [header, payload])
        if written < len(header) + len(payload):
            # writev may write less than asked (signals, some filesystems); finish the job.
            rest = memoryview(header + payload)[written:]
            while rest:
                rest = rest[os.write(self.fd, rest) :]
        if fsync:
            os.fsync(self.fd)

    def close(self, *, fsync: bool) -> None:
        """Close the writer fd, fsyncing first if asked."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def read_run(path: Path, seq: int, offset: int, limit: int, run: RowRun) -> None:
    """Add rows to `run` from one segment, starting at the chunk of `seq` at `offset`.

    Reads no further than `limit` (the valid size when the caller looked). Chunks wholly before
    the run are skipped by their headers; every chunk the run takes rows from is checksummed.
    """
    with path.open("rb", buffering=0) as f:
        f.seek(offset)
        buf, base = b"", offset  # buf holds the file's bytes from `base` on
        pos = offset
        while pos + HEADER_SIZE <= limit:
            start = pos - base
            if start + HEADER_SIZE > len(buf):
                buf, base, start = _refill(f, buf, start, pos, limit, HEADER_SIZE), pos, 0
            length, _, first, count = HEADER.unpack_from(buf, start)
            if first != seq or count == 0:
                raise SpoolCorrupt(f"{path}: expected a chunk of seq {seq} at byte {pos}")
            end = start + HEADER_SIZE + length
            if first + count > run.next_seq:
                if end > len(buf):
                    buf, base, start = _refill(f, buf, start, pos, limit, end - start), pos, 0
                    end = HEADER_SIZE + length
                payload = buf[start + HEADER_SIZE : end]
                if len(payload) != length or not checksum_ok(
                    buf[start : start + HEADER_SIZE], payload
                ):
                    raise SpoolCorrupt(f"{path}: chunk {seq} at byte {pos} fails its checksum")
                if not run.add(first, count, payload):
                    return
            pos += HEADER_SIZE + length
            seq += count


def _refill(f: BinaryIO, buf: bytes, start: int, pos: int, limit: int, need: int) -> bytes:
    """`buf` from `start` on (file offset `pos`) plus at least `need` bytes in all, up to `limit`."""
    kept = buf[start:]
    f.seek(pos + len(kept))
    return kept + f.read(max(0, min(max(_READ_BUFFER, need - len(kept)), limit - pos - len(kept))))


def sync_directory(directory: Path) -> None:
    """fsync a directory so file creations, renames and deletions in it survive a power cut."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _count_frames(data: bytes, pos: int) -> int:
    frames = 0
    while pos < len(data):
        frames += 1
        if pos + HEADER_SIZE > len(data):
            break
        pos += HEADER_SIZE + HEADER.unpack_from(data, pos)[0]
    return frames
