"""Durable read positions of the NDJSON tail source, and the per-file ack frontier.

A file is known by its identity `(device, inode)`, not its path, so a rotated file (renamed to
`app.log.1`) keeps its position. The identity alone can be reused by the OS after a delete, so
each position also keeps a fingerprint of the file's first bytes (up to `HEAD_BYTES`): when the
fingerprint does not match on restart, the file is a different one and is read from the start.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEAD_BYTES = 256
"""How many leading bytes of a file fingerprint it."""

FileKey = tuple[int, int]
"""(st_dev, st_ino) of a file."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where reading of one file resumes: every line before `offset` has been acknowledged."""

    dev: int
    ino: int
    path: str
    offset: int
    head_len: int
    head_sha256: str

    @property
    def key(self) -> FileKey:
        return (self.dev, self.ino)

    def matches_head(self, head: bytes) -> bool:
        """Whether `head` (the file's first bytes now) is the file this position was taken on."""
        return len(head) >= self.head_len and fingerprint(head[: self.head_len]) == self.head_sha256


def fingerprint(data: bytes) -> str:
    """sha256 hex of a file's leading bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Seen:
    """A rotated file already accounted for (read, or there before streamd first looked)."""

    dev: int
    ino: int
    head_len: int
    head_sha256: str

    @property
    def key(self) -> FileKey:
        return (self.dev, self.ino)

    @classmethod
    def of(cls, key: FileKey, head: bytes) -> Seen:
        """The record of file `key` whose first bytes are `head`."""
        return cls(key[0], key[1], len(head), fingerprint(head))

    def matches_head(self, head: bytes) -> bool:
        """Whether a file starting with `head` is this one (not a new file reusing its inode)."""
        return len(head) >= self.head_len and fingerprint(head[: self.head_len]) == self.head_sha256


class PositionStore:
    """One small JSON file holding every tracked file's position, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[FileKey, Position] | None:
        """The stored positions, or None when nothing was ever stored (a first start)."""
        data = self._read()
        if data is None:
            return None
        positions = [Position(**entry) for entry in data["files"]]
        return {p.key: p for p in positions}

    def load_seen(self) -> dict[FileKey, Seen] | None:
        """Rotated files already accounted for; None if never stored (a first start, or a
        positions file written before these were kept)."""
        data = self._read()
        if data is None or "seen" not in data:
            return None
        return {s.key: s for s in (Seen(**entry) for entry in data["seen"])}

    def _read(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        return data

    def save(self, positions: list[Position], seen: Sequence[Seen] = ()) -> None:
        """Write tmp, fsync, rename, fsync the directory: a crash leaves the old or the new file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "version": 2,
                "files": [_as_dict(p) for p in positions],
                "seen": [
                    {
                        "dev": s.dev,
                        "ino": s.ino,
                        "head_len": s.head_len,
                        "head_sha256": s.head_sha256,
                    }
                    for s in seen
                ],
            },
            indent=1,
        ).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself must survive a power loss too
        finally:
            os.close(dir_fd)


def _as_dict(p: Position) -> dict[str, Any]:
    return {
        "dev": p.dev,
        "ino": p.ino,
        "path": p.path,
        "offset": p.offset,
        "head_len": p.head_len,
        "head_sha256": p.head_sha256,
    }


class AckTracker:
    """The contiguous acknowledged prefix of one file's lines, whatever order acks come in.

    Each line read gets an entry `(end offset, done)`; `committed` is the end of the longest
    prefix of done entries, so a restart from it repeats no acknowledged line and skips no
    unacknowledged one. A truncation adds a done entry ending at 0: once every line before it is
    acknowledged, the position drops to the start of the rewritten file.
    """

    def __init__(self, committed: int) -> None:
        self.committed = committed
        self._entries: deque[list[Any]] = deque()
        self._base = 0  # index of self._entries[0]

    @property
    def pending(self) -> int:
        """Lines read whose ack has not come back (or that wait for an earlier one)."""
        return len(self._entries)

    def add(self, end: int, *, done: bool = False) -> int:
        """Track a line ending at `end`; returns its index for `mark`."""
        index = self._base + len(self._entries)
        self._entries.append([end, done])
        if done:
            self._advance()
        return index

    def mark(self, index: int) -> bool:
        """Record the ack of line `index`; True when `committed` moved."""
        i = index - self._base
        if i < 0 or self._entries[i][1]:
            return False  # a repeated ack changes nothing
        self._entries[i][1] = True
        return self._advance()

    def acked(self, index: int) -> bool:
        """Whether line `index` has been acknowledged."""
        i = index - self._base
        return i < 0 or bool(self._entries[i][1])

    def _advance(self) -> bool:
        before = self.committed
        while self._entries and self._entries[0][1]:
            self.committed = self._entries.popleft()[0]
            self._base += 1
        return self.committed != before
