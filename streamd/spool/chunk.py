"""The spool's unit of storage: a chunk of consecutive NDJSON rows behind one header and checksum.

Frame layout (little endian)::

    u32 length | u32 crc32(first seq, count, payload) | u64 first seq | u32 count | payload

The payload is `count` NDJSON lines, each ending in a newline: exactly the bytes an append request
body holds, so a batch is cut out of chunks without touching its rows one by one. One checksum per
append (as Kafka's record batches do) rather than per row: framing and verifying each row in Python
cost as much as serialising it with orjson (bench/spool.py). A torn or corrupt chunk is caught
whichever field it hit, and a chunk is written in one `write`, so recovery drops whole appends.

Rows must not contain a raw newline; orjson never writes one (it escapes control characters).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate

HEADER = struct.Struct("<IIQI")
HEADER_SIZE = HEADER.size
_CHECKED = struct.Struct("<QI")
"""The header fields after the checksum, which the checksum covers along with the payload."""


def chunk_size(lines: Sequence[bytes]) -> int:
    """Bytes `lines` take on disk as one chunk."""
    return HEADER_SIZE + sum(map(len, lines)) + len(lines)


def rolls(lines: Sequence[bytes], used: int, segment_bytes: int) -> list[int]:
    """Where an append to a segment holding `used` bytes rolls to a new segment: before the rows
    at these indexes (each segment gets one chunk of the rows that fit)."""
    if used + chunk_size(lines) <= segment_bytes:
        return []
    out, used = [], used + HEADER_SIZE
    for i, line in enumerate(lines):
        if used + len(line) + 1 > segment_bytes:
            out.append(i)
            used = HEADER_SIZE
        used += len(line) + 1
    return out


def layout(lines: Sequence[bytes], used: int, segment_bytes: int) -> list[int]:
    """Bytes on disk after each of `lines`, headers included, appended as `rolls` splits them."""
    # A roll before the first row only moves its chunk's header to the next segment.
    starts = {0, *rolls(lines, used, segment_bytes)}
    return list(
        accumulate(
            len(line) + 1 + (HEADER_SIZE if i in starts else 0) for i, line in enumerate(lines)
        )
    )


def encode(lines: Sequence[bytes], first_seq: int) -> tuple[bytes, bytes]:
    """The header and payload of one chunk holding `lines` as seqs `first_seq…`."""
    payload = b"\n".join(lines) + b"\n"
    if payload.count(b"\n") != len(lines):
        raise ValueError("a spooled row contains a raw newline; rows must be single NDJSON lines")
    checked = _CHECKED.pack(first_seq, len(lines))
    crc = zlib.crc32(payload, zlib.crc32(checked))
    return HEADER.pack(len(payload), crc, first_seq, len(lines)), payload


def checksum_ok(header: bytes, payload: bytes) -> bool:
    """Whether `payload` and the seq fields of `header` match the header's checksum."""
    crc: int = HEADER.unpack_from(header)[1]
    return zlib.crc32(payload, zlib.crc32(header[8:HEADER_SIZE])) == crc


def nth_line_end(payload: bytes, pos: int, n: int) -> int:
    """The offset just past the `n`-th newline at or after `pos`."""
    find = payload.find
    for _ in range(n):
        pos = find(b"\n", pos) + 1
    return pos


@dataclass(slots=True)
class RowRun:
    """Consecutive rows cut from chunks: the NDJSON body of a batch and the seqs it covers."""

    next_seq: int
    """Where the run starts until its first row is taken, then the seq after its last row."""
    max_rows: int
    max_bytes: int
    first: int = 0
    rows: int = 0
    nbytes: int = 0
    pieces: list[bytes] = field(default_factory=list)

    @property
    def last(self) -> int:
        """The seq of the last row (first - 1 when empty)."""
        return self.first + self.rows - 1

    def body(self) -> bytes:
        """The rows as one NDJSON body, every line ending in a newline."""
        return b"".join(self.pieces)

    def lines(self) -> list[tuple[int, bytes]]:
        """(seq, line without its newline) per row; for callers that need rows one by one."""
        return list(enumerate(self.body().split(b"\n")[:-1], self.first))

    def add(self, first: int, count: int, payload: bytes) -> bool:
        """Take this chunk's rows from `next_seq` on, within the limits; False once complete.

        A chunk wholly before `next_seq` is passed over. An empty run starts at the first chunk
        after a gap (rows dropped or deleted); a run with rows stops at one, so it stays contiguous.
        """
        if first + count <= self.next_seq:
            return True
        if first > self.next_seq and self.rows:
            return False
        skip = max(0, self.next_seq - first)
        start = nth_line_end(payload, 0, skip) if skip else 0
        take = min(count - skip, self.max_rows - self.rows)
        end = len(payload) if take == count - skip else nth_line_end(payload, start, take)
        budget = self.max_bytes - self.nbytes
        if end - start > budget:
            # The byte limit cuts inside: end at the last newline within budget. An empty run
            # still takes one row, so a reader gets past a row bigger than its budget.
            cut = payload.rfind(b"\n", start, start + budget) if budget > 0 else -1
            if cut >= 0:
                end = cut + 1
            elif not self.rows:
                end = nth_line_end(payload, start, 1)
            else:
                return False
            take = payload.count(b"\n", start, end)
        if not self.rows:
            self.first = first + skip
        self.pieces.append(payload if start == 0 and end == len(payload) else payload[start:end])
        self.rows += take
        self.nbytes += end - start
        self.next_seq = first + skip + take
        return take == count - skip and self.rows < self.max_rows and self.nbytes < self.max_bytes
