"""A durable, bounded, append-only spool for one lane; its sequence numbers are offset tokens.

Push sources (HTTP, MQTT) cannot replay, so a row is appended here before it is acknowledged, and
the seq it gets (`streamd.rows.format_offset(seq)`) is its offset token on the channel. After a
restart the channel writer reads `last_committed_offset_token`, calls `commit()` with it, and
replays `read(committed + 1, …)`: exactly once.

Sequence numbers start at 1; `committed == 0` means nothing is committed yet.

Durability of `append()` (what "acknowledged" means per `SpoolConfig.fsync`):

- ``always``: the rows were written and fsynced before `append` returns; they survive power loss.
- ``interval``: `append` returns once `write()` has returned, so the rows survive a crash of
  streamd itself. `run()` (which must be running) fsyncs whatever was written at least every
  `fsync_interval_ms`, so a power loss or kernel crash loses at most the rows acknowledged in the
  last interval plus the time one fsync takes. `await wait_synced(seq)` waits for that fsync.
- ``never``: the OS decides when data reaches the disk; only a crash of streamd itself is covered.

Concurrency: one writer per lane (one task calls `append`, enforced); `read`, `wait_for`,
`commit` and `stats` may run concurrently with it. Blocking file I/O runs in worker threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus

from streamd.clock import Clock
from streamd.logs import get_logger
from streamd.spool import _files
from streamd.spool.chunk import HEADER_SIZE, RowRun, chunk_size, encode, layout, rolls
from streamd.spool.config import SpoolConfig
from streamd.spool.errors import BatchTooLarge, RecordTooLarge
from streamd.spool.reader import read_segments
from streamd.spool.segment import Segment

INLINE_WRITE_BYTES = 256 * 1024
"""Appends up to this size without fsync are written on the event loop (page-cache copies)."""


class LaneSpool:
    """The spool of one lane directory. Open with `await LaneSpool.open(...)`, end with `aclose()`."""

    def __init__(self, state: _files.Opened, config: SpoolConfig, clock: Clock, lane: str) -> None:
        self.directory = state.directory
        self.config = config
        self.lane = lane
        self._clock = clock
        self._segments = state.segments
        self._committed = state.committed
        self._lock_fd: int | None = state.lock_fd
        self.recovered_torn_bytes = sum(t.bytes_dropped for t in state.torn)
        """Bytes recovery cut off torn or corrupt segment tails when this spool was opened."""
        self.recovered_torn = state.torn
        self.rows_dropped = 0
        """Rows lost on purpose by `when_full` (drop_oldest) or refused (drop_newest) since open."""
        self._sync = config.fsync != "never"
        # Everything on disk at open was validated and, unless fsync="never", synced by recovery.
        self._synced_seq = self.next_seq - 1
        self._io_lock = anyio.Lock()  # guards the active segment's fd: writes, rolls, fd dups
        self._commit_lock = anyio.Lock()
        self._appended = anyio.Event()
        self._space_freed = anyio.Event()
        self._synced = anyio.Event()
        self._writing = False
        self._blocked = False
        self._flusher_running = False
        self._closed = False
        self._log = get_logger(lane=lane)

    @classmethod
    async def open(
        cls, directory: Path, config: SpoolConfig, clock: Clock, *, lane: str | None = None
    ) -> LaneSpool:
        """Open (creating if needed) and recover the spool in `directory`.

        Recovery truncates torn or corrupt segment tails (logged as `spool_tail_truncated`, summed
        in `recovered_torn_bytes`), deletes segments the committed mark covers, and continues the
        sequence after the last intact record (or after the committed mark, if that is further).
        """
        state = await anyio.to_thread.run_sync(_files.open_directory, directory, config.fsync)
        spool = cls(state, config, clock, lane or directory.name)
        for torn in state.torn:
            spool._log.warning(
                "spool_tail_truncated",
                segment=torn.path.name,
                valid_bytes=torn.valid_bytes,
                bytes=torn.bytes_dropped,
                frames=torn.frames_dropped,
                first_lost_seq=torn.first_lost_seq,
            )
        return spool

    # ---- state ---------------------------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        """The oldest seq still on disk (== next_seq when the spool is empty)."""
        return next((s.first_seq for s in self._segments if s.count), self.next_seq)

    @property
    def next_seq(self) -> int:
        """The seq the next appended row will get."""
        return self._segments[-1].next_seq

    @property
    def committed(self) -> int:
        """The highest seq known committed in Snowflake (0: none)."""
        return self._committed

    @property
    def synced_seq(self) -> int:
        """Every row up to this seq is fsynced."""
        return self._synced_seq

    @property
    def bytes_on_disk(self) -> int:
        """Bytes in this lane's segment files."""
        return sum(s.size for s in self._segments)

    @property
    def writer_blocked(self) -> bool:
        """True while `append` waits for commits to free space (when_full = "block")."""
        return self._blocked

    def stats(self) -> dict[str, Any]:
        """A snapshot for `streamd inspect` and metrics."""
        next_seq = self.next_seq
        return {
            "lane": self.lane,
            "bytes": self.bytes_on_disk,
            "max_bytes": self.config.max_bytes,
            "segments": len(self._segments),
            "first_seq": self.first_seq,
            "next_seq": next_seq,
            "committed": self._committed,
            "synced_seq": self._synced_seq,
            "rows_waiting": next_seq - max(self._committed + 1, self.first_seq),
            "rows_dropped": self.rows_dropped,
            "writer_blocked": self._blocked,
            "recovered_torn_bytes": self.recovered_torn_bytes,
            "fsync": self.config.fsync,
            "when_full": self.config.when_full,
        }

    # ---- writing -------------------------------------------------------------------------------

    async def append(self, lines: Sequence[bytes]) -> range:
        """Append encoded NDJSON lines; returns their seqs once durable per `config.fsync`.

        With when_full = "drop_newest" the result may be shorter than `lines`: only
        `lines[:len(result)]` were stored and may be acknowledged; the rest were refused, counted
        in `rows_dropped` and logged (`spool_rows_dropped`). Other policies store all or raise.
        """
        if self._closed:
            raise anyio.ClosedResourceError
        if self._writing:
            raise RuntimeError(f"spool {self.lane}: one writer per lane; append is already running")
        if self.config.fsync == "interval" and not self._flusher_running:
            raise RuntimeError(
                f"spool {self.lane}: fsync='interval' needs LaneSpool.run() running in a task group"
            )
        if not lines:
            return range(self.next_seq, self.next_seq)
        biggest = max(map(len, lines))
        if HEADER_SIZE + biggest + 1 > self.config.segment_bytes:
            raise RecordTooLarge(
                f"spool {self.lane}: a {biggest}-byte row does not fit a {self.config.segment_bytes}-byte segment; raise spool segment_bytes"
            )
        need = chunk_size(lines)
        if need > self.config.segment_bytes:
            # What the append takes on disk in empty segments: more than max_bytes never fits.
            need = layout(lines, 0, self.config.segment_bytes)[-1]
        if need > self.config.max_bytes and self.config.when_full != "drop_newest":
            raise BatchTooLarge(
                f"spool {self.lane}: an append of {need} bytes exceeds max_bytes {self.config.max_bytes}; append smaller batches"
            )
        self._writing = True
        try:
            keep = await self._make_room(lines)
            if keep < len(lines):
                lines = lines[:keep]
            if not lines:
                return range(self.next_seq, self.next_seq)
            async with self._io_lock:
                first = self.next_seq
                await self._write(lines)
            written = range(first, self.next_seq)
        finally:
            self._writing = False
        self._appended.set()
        self._appended = anyio.Event()
        return written

    async def _write(self, lines: Sequence[bytes]) -> None:
        """Write (caller holds the io lock) as one chunk per segment the rows span (`chunk.rolls`)."""
        start = 0
        for cut in rolls(lines, self._segments[-1].size, self.config.segment_bytes):
            if cut > start:
                await self._write_chunk(lines[start:cut])
            await self._roll(self.next_seq)
            start = cut
        await self._write_chunk(lines[start:])

    def _cost(self, lines: Sequence[bytes]) -> int:
        """Bytes `lines` will take on disk once `_write` has laid them out."""
        size = chunk_size(lines)
        if self._segments[-1].size + size <= self.config.segment_bytes:
            return size
        return layout(lines, self._segments[-1].size, self.config.segment_bytes)[-1]

    async def _write_chunk(self, lines: Sequence[bytes]) -> None:
        segment = self._segments[-1]
        fsync = self.config.fsync == "always"
        header, payload = encode(lines, segment.next_seq)
        nbytes = len(header) + len(payload)
        if fsync or nbytes > INLINE_WRITE_BYTES:
            await anyio.to_thread.run_sync(lambda: segment.write(header, payload, fsync=fsync))
        else:
            # A small write without fsync only copies into the page cache (microseconds); a thread
            # hop would cost ~100x more and, at one append per few rows, dominate the hot path.
            segment.write(header, payload, fsync=False)
        segment.added(len(lines), nbytes)
        if fsync:
            self._mark_synced(segment.last_seq)

    async def _roll(self, first_seq: int) -> None:
        """Close the active segment (synced unless fsync='never') and start a new one at first_seq."""
        old, sync = self._segments[-1], self._sync

        def roll() -> Segment:
            old.close(fsync=sync)
            return Segment.create(self.directory, first_seq, sync=sync)

        self._segments.append(await anyio.to_thread.run_sync(roll))
        if sync:
            self._mark_synced(old.last_seq)

    async def _make_room(self, lines: Sequence[bytes]) -> int:
        """How many of `lines` may be written now, after waiting or dropping as when_full says."""
        limit = self.config.max_bytes
        while self.bytes_on_disk + self._cost(lines) > limit:
            await self._delete_committed(roll_active=True)
            if self.bytes_on_disk + self._cost(lines) <= limit:
                break
            if self.config.when_full == "drop_newest":
                keep = bisect_right(
                    layout(lines, self._segments[-1].size, self.config.segment_bytes),
                    limit - self.bytes_on_disk,
                )
                self._dropped(None, None, len(lines) - keep, after_seq=self.next_seq - 1 + keep)
                return keep
            if self.config.when_full == "drop_oldest":
                await self._drop_oldest_segment()
                continue
            space_freed = self._space_freed
            self._blocked = True
            try:
                await space_freed.wait()
            finally:
                self._blocked = False
            if self._closed:
                raise anyio.ClosedResourceError
        return len(lines)

    async def _drop_oldest_segment(self) -> None:
        if len(self._segments) == 1:
            # The active segment is the oldest: roll it so it can go, then let the caller look
            # again, since a commit may have freed space (or deleted it) while we rolled.
            async with self._io_lock:
                if len(self._segments) == 1:
                    await self._roll(self.next_seq)
            return
        # No await between choosing the victim and taking it out of the list: a concurrent
        # commit() cannot delete it (or the active segment) under us.
        victim = self._segments.pop(0)
        first = max(victim.first_seq, self._committed + 1)
        if victim.last_seq >= first:
            self._dropped(first, victim.last_seq, victim.last_seq - first + 1)
        await anyio.to_thread.run_sync(_files.delete_segments, self.directory, [victim], self._sync)

    def _dropped(self, first: int | None, last: int | None, rows: int, **extra: Any) -> None:
        self.rows_dropped += rows
        self._log.error(
            "spool_rows_dropped",
            first_seq=first,
            last_seq=last,
            rows=rows,
            policy=self.config.when_full,
            **extra,
        )

    # ---- committing ----------------------------------------------------------------------------

    async def commit(self, upto_seq: int) -> None:
        """Rows ≤ upto_seq are committed in Snowflake: remember it durably and free their segments.

        A committed mark at or beyond `next_seq` (the spool lost rows Snowflake has, e.g. after a
        power cut with fsync='never') moves the sequence past it, so new rows never reuse a
        committed offset token and are never skipped by replay.
        """
        async with self._commit_lock:
            if upto_seq <= self._committed or self._closed:
                return
            if upto_seq >= self.next_seq:
                self._log.warning(
                    "spool_behind_committed", next_seq=self.next_seq, committed=upto_seq
                )
                async with self._io_lock:
                    if upto_seq >= self.next_seq:  # an append may have landed while we waited
                        await self._roll(upto_seq + 1)
            self._committed = upto_seq
            await anyio.to_thread.run_sync(
                _files.write_committed, self.directory, upto_seq, self._sync
            )
            await self._delete_committed(roll_active=False)
        self._space_freed.set()
        self._space_freed = anyio.Event()

    async def _delete_committed(self, *, roll_active: bool) -> None:
        """Delete segments whose rows are all committed; the active one only if `roll_active`."""
        if roll_active and 0 < self._segments[-1].last_seq <= self._committed:
            # Only the writer gets here, when it needs the space: rolling on every commit would
            # churn a file per commit in the steady state where everything is committed.
            async with self._io_lock:
                active = self._segments[-1]
                if active.count and active.last_seq <= self._committed:  # a commit may have rolled
                    await self._roll(self.next_seq)
        done = [s for s in self._segments[:-1] if s.last_seq <= self._committed]
        if done:
            del self._segments[: len(done)]
            await anyio.to_thread.run_sync(_files.delete_segments, self.directory, done, self._sync)

    # ---- reading and waiting -------------------------------------------------------------------

    async def read_run(self, from_seq: int, max_rows: int, max_bytes: int) -> RowRun:
        """Up to `max_rows` consecutive rows from `from_seq` on as one NDJSON body of at most
        `max_bytes` (but at least one row).

        Starts at `first_seq` when `from_seq` was deleted or dropped (`run.first` shows the gap).
        An empty run (`rows == 0`) means nothing at or after `from_seq` is stored yet; see `wait_for`.
        """
        return await read_segments(self._segments, from_seq, max_rows, max_bytes)

    async def read(self, from_seq: int, max_rows: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """`read_run`, row by row: (seq, line without its newline)."""
        return (await self.read_run(from_seq, max_rows, max_bytes)).lines()

    async def wait_for(self, seq: int) -> None:
        """Wait until the row with `seq` has been appended (returns at once if it has)."""
        while self.next_seq <= seq:
            if self._closed:
                raise anyio.ClosedResourceError
            await self._appended.wait()

    async def wait_synced(self, seq: int) -> None:
        """Wait until every row up to `seq` is fsynced (at once with fsync='never': nothing will be)."""
        while self._sync and self._synced_seq < seq:
            if self._closed:
                raise anyio.ClosedResourceError
            await self._synced.wait()

    def _mark_synced(self, seq: int) -> None:
        if seq > self._synced_seq:
            self._synced_seq = seq
            self._synced.set()
            self._synced = anyio.Event()

    # ---- background fsync and closing ----------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The interval flusher: run it in the owner's task group while the spool is open.

        Start it with `await task_group.start(spool.run)`; returns at once unless fsync = "interval",
        otherwise runs until cancelled (cancel it after `aclose()`). Wakes on a fixed schedule (not `interval` after
        the last fsync ended), so a write waits at most one interval for its fsync to start.
        """
        if self.config.fsync != "interval":
            task_status.started()
            return
        interval = self.config.fsync_interval_ms / 1000
        self._flusher_running = True
        task_status.started()
        try:
            deadline = self._clock.monotonic()
            while not self._closed:
                deadline += interval
                now = self._clock.monotonic()
                deadline = max(deadline, now)  # fell behind: sync now, don't burst to catch up
                await self._clock.sleep(deadline - now)
                await self._sync_now()
        finally:
            self._flusher_running = False

    async def _sync_now(self) -> None:
        target = self.next_seq - 1
        if target <= self._synced_seq:
            return
        async with self._io_lock:
            # Older segments were synced when they rolled; only the active one can be dirty. A dup
            # lets the fsync run without the lock, so appends are not held up by it.
            target, fd = self.next_seq - 1, self._segments[-1].fd
            if fd is None:
                return
            fd = os.dup(fd)
        await anyio.to_thread.run_sync(_files.fsync_and_close, fd)
        self._mark_synced(target)

    async def aclose(self) -> None:
        """Sync (unless fsync='never') and close; wakes blocked writers and waiters with ClosedResourceError."""
        if self._closed:
            return
        self._closed = True
        for event in (self._appended, self._space_freed, self._synced):
            event.set()
        with anyio.CancelScope(shield=True):
            async with self._io_lock:
                active, sync = self._segments[-1], self._sync
                await anyio.to_thread.run_sync(lambda: active.close(fsync=sync))
                if sync:
                    self._mark_synced(active.last_seq)
            if self._lock_fd is not None:
                lock_fd, self._lock_fd = self._lock_fd, None
                with contextlib.suppress(OSError):
                    fcntl.flock(lock_fd, fcntl.LOCK_UN)
                os.close(lock_fd)


__all__ = ["LaneSpool", "SpoolConfig"]
