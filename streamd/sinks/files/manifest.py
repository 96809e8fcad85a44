"""The durable list of a lane's files that were cut but not yet confirmed loaded.

A file is recorded here (atomically, fsynced) *before* it is uploaded, with the spool range it
holds. After a crash the same ranges are rebuilt from the spool under the same names and submitted
again: Snowpipe skips a file it already loaded, and the load history says whether it did. So the
batcher's cut points never decide what a file holds after a restart, and no row is ever in two
file names. An entry goes once its rows are loaded or dead-lettered and the spool committed them.

Names carry the lane's `epoch` (random, made once per state directory), so a wiped state dir whose
sequence numbers start again at 1 can never produce a name Snowpipe remembers as loaded.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
import orjson


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file: its stage path and the spool range [first, last] it holds."""

    path: str
    first: int
    last: int
    created_wall: float
    """When it was first cut (wall clock): the load history is searched from a bit before."""

    @property
    def rows(self) -> int:
        """Rows in the file (spool sequences are contiguous within a lane)."""
        return self.last - self.first + 1


def file_path(table: str, shard: int, epoch: str, first: int, last: int) -> str:
    """`<TABLE>/<epoch>/<first>-<last>.ndjson.gz` (shard > 0 adds `-s<shard>` to the epoch dir)."""
    name = table.rsplit(".", 1)[-1]
    where = epoch if shard == 0 else f"{epoch}-s{shard}"
    return f"{name}/{where}/{first:012d}-{last:012d}.ndjson.gz"


class Manifest:
    """`<dir>/manifest.json`: the unconfirmed files of one lane, oldest first."""

    def __init__(self, directory: Path, epoch: str, entries: list[FileEntry]) -> None:
        self.directory = directory
        self.epoch = epoch
        self.entries = entries
        self._lock = anyio.Lock()

    @classmethod
    async def open(cls, directory: Path) -> Manifest:
        """Load (or start) the manifest of a lane."""
        return await anyio.to_thread.run_sync(cls._open_sync, directory)

    @classmethod
    def _open_sync(cls, directory: Path) -> Manifest:
        directory.mkdir(parents=True, exist_ok=True)
        epoch_file = directory / "epoch"
        if epoch_file.exists():
            epoch = epoch_file.read_text().strip()
        else:
            epoch = secrets.token_hex(4)
            _write_atomic(epoch_file, epoch.encode())
        path = directory / "manifest.json"
        entries = []
        if path.exists():
            entries = [FileEntry(**e) for e in orjson.loads(path.read_bytes())]
        return cls(directory, epoch, entries)

    @property
    def last(self) -> int:
        """The last spool sequence any recorded file holds (0 when none)."""
        return self.entries[-1].last if self.entries else 0

    async def add(self, entry: FileEntry) -> None:
        """Record a file durably before it is uploaded."""
        async with self._lock:
            self.entries.append(entry)
            await self._save()

    async def remove_upto(self, seq: int) -> None:
        """Forget files whose rows are all ≤ `seq` (committed in the spool)."""
        async with self._lock:
            keep = [e for e in self.entries if e.last > seq]
            if len(keep) != len(self.entries):
                self.entries = keep
                await self._save()

    async def _save(self) -> None:
        data = orjson.dumps([asdict(e) for e in self.entries])
        await anyio.to_thread.run_sync(_write_atomic, self.directory / "manifest.json", data)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
