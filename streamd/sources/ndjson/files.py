"""The files the NDJSON tail source follows: found by glob, by identity after a rotation, and
beside a followed path when rotated away unseen; `Tail` is one being read."""

from __future__ import annotations

import glob
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from streamd.sources.ndjson.position import HEAD_BYTES, AckTracker, FileKey


@dataclass(slots=True)
class Tail:
    """One open file being followed."""

    key: FileKey
    path: str
    fd: int
    offset: int  # next byte to read
    tracker: AckTracker
    head: bytes
    partial: bytes = b""
    skipping: bool = False  # inside an over-long line, discarding up to its newline
    gone_rounds: int = 0  # scans since its path stopped matching (rotated away or deleted)
    closed: bool = False
    behind: set[FileKey] = field(default_factory=set)  # rotated-away files to finish first


def glob_files(patterns: list[str]) -> dict[FileKey, str]:
    """Regular files matching any pattern, by identity (a file matched twice counts once)."""
    found: dict[FileKey, str] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.expanduser(pattern))):
            try:
                st = os.stat(path)
            except OSError:
                continue  # removed since the listing
            if stat.S_ISREG(st.st_mode):
                found.setdefault((st.st_dev, st.st_ino), path)
    return found


def open_file(path: str, key: FileKey) -> tuple[int, int, bytes] | None:
    """(fd, size, first bytes) of `path` if it is still the file `key`; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != key:
        os.close(fd)
        return None
    return fd, st.st_size, os.pread(fd, HEAD_BYTES, 0)


def find_by_identity(old_path: str, key: FileKey) -> str | None:
    """The path the file `key` has now, looked for in the directory of `old_path` (where a
    rotation renames it: `app.ndjson` → `app.ndjson.1`); None if it is not there any more."""
    directory = os.path.dirname(old_path) or "."
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == key:
            return entry.path
    return None


# Rotated files streamd cannot read as NDJSON (a compressor wrote them as new files).
_COMPRESSED = (".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def rotated_siblings(live_paths: Iterable[str]) -> dict[FileKey, tuple[str, tuple[int, int]]]:
    """Files beside each live path named like its rotations (`app.ndjson.1`, `app.ndjson-2026…`).

    Each comes with a sort key, oldest first: its modification time, and for equal times the
    higher rotation number first (logrotate's `.2` is older than its `.1`).
    """
    found: dict[FileKey, tuple[str, tuple[int, int]]] = {}
    by_dir: dict[str, set[str]] = {}
    for path in live_paths:
        by_dir.setdefault(os.path.dirname(path) or ".", set()).add(os.path.basename(path))
    for directory, names in by_dir.items():
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            name = entry.name
            if name in names or name.endswith(_COMPRESSED):
                continue
            if not any(
                name.startswith(n) and name[len(n)] in ".-_" for n in names if len(name) > len(n)
            ):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                number = _TRAILING_NUMBER.search(name)
                order = (st.st_mtime_ns, -int(number[1]) if number else 0)
                found.setdefault((st.st_dev, st.st_ino), (entry.path, order))
    return found
