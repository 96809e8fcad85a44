"""The lane directory's files besides segment contents: lock, committed mark, recovery, deletion.

Layout of a lane directory::

    lock                          flock'd while a spool has the directory open
    committed                     the committed mark, an offset token (written atomically)
    00000000000000000001.chunks   segments, named by their first seq
    …

All functions block; the spool calls them from worker threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from streamd.rows import format_offset, parse_offset
from streamd.spool.errors import SpoolCorrupt, SpoolLocked
from streamd.spool.segment import (
    OLD_SUFFIX,
    Segment,
    TornTail,
    parse_segment_name,
    sync_directory,
)

COMMITTED = "committed"
_COMMITTED_TMP = "committed.tmp"
LOCK = "lock"


@dataclass(slots=True)
class Opened:
    """A recovered lane directory: its segments (last one open for appending) and committed mark."""

    directory: Path
    segments: list[Segment]
    committed: int
    lock_fd: int
    torn: list[TornTail]


def open_directory(directory: Path, fsync: str) -> Opened:
    """Lock, recover and tidy a lane directory (creating it if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock_fd)
        raise SpoolLocked(
            f"spool directory {directory} is in use by another streamd (or another open spool)"
        ) from None
    try:
        return _recover(directory, lock_fd, sync=fsync != "never")
    except BaseException:
        os.close(lock_fd)
        raise


def _recover(directory: Path, lock_fd: int, *, sync: bool) -> Opened:
    (directory / _COMMITTED_TMP).unlink(missing_ok=True)  # a commit that never got renamed
    committed = read_committed(directory)
    old = sorted(
        p.name for p in directory.iterdir() if parse_segment_name(p.name, OLD_SUFFIX) is not None
    )
    if old:
        # The first format framed each row; reading it here would need a second reader forever.
        # Refuse rather than guess: those rows are not committed and must not vanish.
        raise SpoolCorrupt(
            f"{directory} holds spool segments in the old per-row format ({old[0]}…); drain them "
            "with the streamd version that wrote them (run it until `inspect` shows no rows "
            "waiting), or move the directory aside to discard those rows"
        )
    found = sorted(
        (first, path)
        for path in directory.iterdir()
        if (first := parse_segment_name(path.name)) is not None
    )
    segments: list[Segment] = []
    torn: list[TornTail] = []
    for first, path in found:
        segment, cut = Segment.recover(path, first, sync=sync)
        if cut is not None:
            torn.append(cut)
        if segments and segment.first_seq < segments[-1].next_seq:
            raise SpoolCorrupt(
                f"{path} starts at seq {first} inside the previous segment; move the directory aside"
            )
        segments.append(segment)
    if not segments or segments[-1].next_seq <= committed:
        # Nothing on disk after the committed mark: continue after it, never reuse a token.
        segments.append(Segment.create(directory, committed + 1, sync=sync))
    else:
        segments[-1].open_writer()
    doomed = [s for s in segments[:-1] if s.count == 0 or s.last_seq <= committed]
    delete_segments(directory, doomed, sync)
    return Opened(directory, [s for s in segments if s not in doomed], committed, lock_fd, torn)


def read_committed(directory: Path) -> int:
    """The committed mark stored in the directory; 0 when nothing was ever committed."""
    try:
        text = (directory / COMMITTED).read_text().strip()
    except FileNotFoundError:
        return 0
    try:
        return parse_offset(text) or 0
    except ValueError:
        raise SpoolCorrupt(
            f"{directory / COMMITTED} holds {text!r}, not an offset token; delete it to replay everything"
        ) from None


def write_committed(directory: Path, upto: int, sync: bool) -> None:
    """Replace the committed mark atomically (write, fsync, rename, fsync the directory)."""
    tmp = directory / _COMMITTED_TMP
    with tmp.open("w") as f:
        f.write(format_offset(upto) + "\n")
        f.flush()
        if sync:
            os.fsync(f.fileno())
    tmp.replace(directory / COMMITTED)
    if sync:
        sync_directory(directory)


def delete_segments(directory: Path, segments: list[Segment], sync: bool) -> None:
    """Close and delete segment files (already gone is fine)."""
    for segment in segments:
        with contextlib.suppress(OSError):
            segment.close(fsync=False)
        segment.path.unlink(missing_ok=True)
    if segments and sync:
        sync_directory(directory)


def fsync_and_close(fd: int) -> None:
    """fsync a (dup'd) fd, then close it."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
