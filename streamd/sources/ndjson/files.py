"""Finding the files the NDJSON tail source follows: by glob, and by identity after a rotation."""

from __future__ import annotations

import glob
import os
import stat

from streamd.sources.ndjson.position import HEAD_BYTES, FileKey


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
