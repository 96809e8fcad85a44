"""One spool segment: a file `<first_seq:020d>.seg` of framed records, appended in batches.

Frame layout (little endian)::

    u32 length | u32 crc32(seq bytes + payload) | u64 seq | payload (one NDJSON line, no newline)

The checksum covers the sequence number as well as the payload, and a wrong length makes the
checksum cover the wrong bytes, so a torn or corrupt frame is caught whichever field it hit.
Sequence numbers inside a segment are consecutive from the number in the file name; recovery also
checks that, which catches the zero-filled tails some filesystems leave after a power cut.

Every method that touches the disk blocks: the spool calls them from worker threads. The
bookkeeping (`count`, `size`, index) is changed only by the spool on the event loop, after the
thread that wrote the bytes has returned, so a concurrent reader never sees a half-written frame.
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import BinaryIO

from streamd.spool.errors import SpoolCorrupt

HEADER = struct.Struct("<IIQ")
HEADER_SIZE = HEADER.size
SUFFIX = ".seg"
INDEX_EVERY = 64
"""A read seeks to the nearest indexed record and skips at most this many headers from there."""

_SEQ = struct.Struct("<Q")
_READ_BUFFER = 256 * 1024


def segment_name(first_seq: int) -> str:
    """The file name of the segment whose first record is `first_seq` (sorts numerically)."""
    return f"{first_seq:020d}{SUFFIX}"


def parse_segment_name(name: str) -> int | None:
    """The first sequence number a segment file name stands for; None for other files."""
    stem, dot, ext = name.partition(".")
    if dot + ext != SUFFIX or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


def framed_size(lines: Sequence[bytes]) -> int:
    """Bytes `lines` take on disk once framed."""
    return sum(map(len, lines)) + HEADER_SIZE * len(lines)


def encode(
    lines: Sequence[bytes], first_seq: int, segment_first: int, base_offset: int
) -> tuple[bytes, list[int]]:
    """Frame `lines` as seqs `first_seq…` into one buffer (one `write` per batch).

    Also returns the file offsets of the records that belong in the sparse index (every
    `INDEX_EVERY`-th record of the segment), given the segment's first seq and current size.
    """
    # Headers are packed whole and joined with the payloads in C (`bytes.join`): writing each
    # record into a preallocated buffer through slices cost 2.4x as much per row (hot path).
    pack, pack_seq, crc32 = HEADER.pack, _SEQ.pack, zlib.crc32
    parts: list[bytes] = []
    append = parts.append
    seq = first_seq
    for line in lines:
        append(pack(len(line), crc32(line, crc32(pack_seq(seq))), seq))
        append(line)
        seq += 1
    index: list[int] = []
    first_indexed = -(first_seq - segment_first) % INDEX_EVERY
    if first_indexed < len(lines):
        before = [0, *accumulate(map(len, lines))]
        index = [
            base_offset + i * HEADER_SIZE + before[i]
            for i in range(first_indexed, len(lines), INDEX_EVERY)
        ]
    return b"".join(parts), index


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
        self.index = array("Q")
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

    def added(self, count: int, nbytes: int, index: list[int]) -> None:
        """Record that `count` frames of `nbytes` were written (event loop side, after the write)."""
        self.index.extend(index)
        # size last: a reader snapshots size, and everything below it must already be counted.
        self.count += count
        self.size += nbytes

    def seek_hint(self, seq: int) -> tuple[int, int]:
        """The nearest indexed (seq, offset) at or before `seq` (which must be in this segment)."""
        slot = min((seq - self.first_seq) // INDEX_EVERY, len(self.index) - 1)
        if slot < 0:
            return self.first_seq, 0
        return self.first_seq + slot * INDEX_EVERY, self.index[slot]

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
        """Validate every frame; truncate the file at the first bad one and say what was cut."""
        segment = cls(path, first_seq)
        data = path.read_bytes()
        view = memoryview(data)
        total = len(data)
        pos = 0
        seq = first_seq
        index: list[int] = []
        while pos + HEADER_SIZE <= total:
            length, crc, rec_seq = HEADER.unpack_from(data, pos)
            end = pos + HEADER_SIZE + length
            if rec_seq != seq or end > total or zlib.crc32(view[pos + 8 : end]) != crc:
                break
            if (seq - first_seq) % INDEX_EVERY == 0:
                index.append(pos)
            pos = end
            seq += 1
        view.release()
        segment.added(seq - first_seq, pos, index)
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

    def write(self, data: bytes | bytearray, *, fsync: bool) -> None:
        """Write all of `data` at the end of the file, then fsync it if asked."""
        assert self.fd is not None, "segment is not open for writing"
        view = memoryview(data)
        while view:
            # os.write may write less than asked (signals, some filesystems); finish the job.
            view = view[os.write(self.fd, view) :]
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


def read_records(
    path: Path,
    seq: int,
    offset: int,
    limit: int,
    from_seq: int,
    max_rows: int,
    max_bytes: int,
) -> list[tuple[int, bytes]]:
    """Records with seq ≥ `from_seq` from one segment, starting at the frame of `seq` at `offset`.

    Reads no further than `limit` (the valid size when the caller looked), returns at most
    `max_rows` records and stops before `max_bytes` of payload, except that the first record is
    always returned so a reader makes progress past a record bigger than its budget.
    """
    out: list[tuple[int, bytes]] = []
    total = 0
    unpack, crc32 = HEADER.unpack_from, zlib.crc32
    # Read in large blocks and cut frames out of memory: two small `read` calls per record cost
    # more than the checksum (hot path: every batch is read back from here).
    with path.open("rb", buffering=0) as f:
        f.seek(offset)
        buf, base = b"", offset  # buf holds the file's bytes from `base` on
        pos = offset
        while pos + HEADER_SIZE <= limit and len(out) < max_rows:
            start = pos - base
            if start + HEADER_SIZE > len(buf):
                buf, base, start = _refill(f, buf, start, pos, limit, HEADER_SIZE), pos, 0
            length, crc, rec_seq = unpack(buf, start)
            if rec_seq != seq:
                raise SpoolCorrupt(f"{path}: expected seq {seq} at byte {pos}, found {rec_seq}")
            end = start + HEADER_SIZE + length
            if seq >= from_seq:
                if out and total + length > max_bytes:
                    break
                if end > len(buf):
                    buf, base, start = _refill(f, buf, start, pos, limit, end - start), pos, 0
                    end = HEADER_SIZE + length
                payload = buf[start + HEADER_SIZE : end]
                if (
                    len(payload) != length
                    or crc32(payload, crc32(buf[start + 8 : start + 16])) != crc
                ):
                    raise SpoolCorrupt(f"{path}: record {seq} at byte {pos} fails its checksum")
                out.append((seq, payload))
                total += length
            pos += HEADER_SIZE + length
            seq += 1
    return out


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
