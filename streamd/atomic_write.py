"""One way to write a file that must never be seen half-written or with a wider mode: keys, certs.

Used by key generation (`streamd keygen`, the local target's key pair) and the stand-in's TLS
material. The bytes go to a temporary file in the same directory, created with O_EXCL and the
final mode from the first instant (then fchmod'ed, because the umask narrows what `open` applies
and 0644 must stay 0644); it is fsynced, appears under its name in one step, and the directory
is fsynced so the new entry survives a crash.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, mode: int, replace: bool = True) -> None:
    """Make `path` hold exactly `data` with exactly `mode`, or leave it as it was.

    With `replace` an existing file is swapped out by `rename`; without it the new file is
    `link`ed into place, which raises FileExistsError (and writes nothing) if `path` exists,
    even if it appeared after the caller last looked. The temporary file is removed on every path.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    # A new or renamed entry survives a crash only once its directory is synced too.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
