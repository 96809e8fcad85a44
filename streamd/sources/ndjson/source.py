"""NDJSON tail source: follows files matching globs into one table, surviving rotation, truncation
and restarts.

Delivery guarantee (precisely):

- A line's position is advanced only once the pipeline has acked it (durable in the spool, or
  handled by the pipeline's own policy: dead-lettered, or refused by a spool with when_full =
  "drop_newest", which counts and logs it), or once a bad line was written to the dead-letter
  queue. Positions are saved atomically (tmp + fsync + rename) by a background task soon after
  acks arrive, and once more on shutdown after waiting up to `drain_timeout_s` for outstanding
  acks. So a restart never skips a line.
- A restart repeats a line only if the process died after the line was durable in the spool but
  before the position write that follows its ack (a window of one small fsynced write), or when
  acks took longer than `drain_timeout_s` on shutdown. Such a line is spooled twice, with two
  offsets: file → table is at-least-once within that window, exactly-once otherwise; tables that
  must never see a duplicate should carry an id in each line and deduplicate on it.
- Rotation: a file is known by (device, inode); a renamed file keeps its position and is read to
  its end (and past a final line without newline) before the file that replaced it. Truncation
  (size below the read position) restarts that file at 0 and is logged. A file rotated while
  streamd was stopped is found by its identity in the directory it was in (`app.ndjson.1`) and
  finished from its saved position before the new file is read. A copy-truncate that
  regrows past the old position between two polls cannot be told from appends (as for any tailer).

Why polling: inotify is Linux-only and misses changes on network filesystems; at EOF the source
sleeps `poll_interval_ms` between reads (and globs), and reads back to back while there is data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from streamd.logs import get_logger
from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.ndjson.files import find_by_identity, glob_files, open_file
from streamd.sources.ndjson.position import (
    HEAD_BYTES,
    AckTracker,
    FileKey,
    Position,
    PositionStore,
    fingerprint,
)
from streamd.sources.rejects import DeadLetter, raw_row

MiB = 1024 * 1024
_CHUNK = MiB
_CHUNKS_PER_ROUND = 8  # per live file per round, so one busy file cannot starve the others


class NdjsonSourceConfig(BaseModel):
    """Tails NDJSON files (one JSON object per line) matching globs into one table."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    kind: Literal["ndjson"] = "ndjson"
    """Selects this source type."""
    name: str = Field(default="ndjson", min_length=1)
    """Unique name of this source (appears in logs; names its position file)."""
    paths: list[str] = Field(min_length=1)
    """Glob patterns of the files to follow, e.g. ["/var/log/app/*.ndjson"]; new matches are picked up."""
    table: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*\.[A-Za-z_][A-Za-z0-9_$]*$"
    )
    """Fully qualified target table, DB.SCHEMA.TABLE."""
    poll_interval_ms: float = Field(default=250, gt=0)
    """Pause at end of all files before looking again (for new data and new files)."""
    max_line_bytes: int = Field(default=1 * MiB, ge=16)
    """Longer lines go to the dead-letter queue."""
    start_at: Literal["beginning", "end"] = "beginning"
    """On the very first start (no saved positions): read existing files from the beginning, or only what is appended."""
    drain_timeout_s: float = Field(default=5, ge=0)
    """On shutdown, how long to wait for acks of lines already sent, so their positions are saved."""

    @field_validator("paths")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError("a path pattern is empty")
        return value

    def tables(self) -> list[str]:
        """The fully qualified table this source writes."""
        return [self.table]


@dataclass(slots=True)
class _Tail:
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


class NdjsonSource:
    """Follows files matching `config.paths`; positions live in `<state_dir>/positions.json`."""

    def __init__(
        self, config: NdjsonSourceConfig, state_dir: Path, dead_letter: DeadLetter | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self._store = PositionStore(state_dir / "positions.json")
        self._dead_letter = dead_letter
        self._tails: dict[FileKey, _Tail] = {}
        self._dirty = anyio.Event()
        self._stopped = False
        # The line being sent: if cancelled mid-send, whether the stream took it is unknowable,
        # so shutdown does not wait for its ack (if it was taken, the late ack still saves).
        self._in_doubt: tuple[_Tail, int] | None = None
        self._log = get_logger(source=config.name)

    # ---- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        """Follow the files until cancelled (or until nobody receives any more)."""
        stored = await anyio.to_thread.run_sync(self._store.load)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._persist_loop)
                try:
                    await self._follow(ctx, stored)
                except anyio.BrokenResourceError:
                    self._log.info("ndjson_receiver_closed")
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._shutdown()

    async def _follow(self, ctx: SourceContext, stored: dict[FileKey, Position] | None) -> None:
        first = True
        while True:
            await self._scan(stored, first)
            first, stored = False, None
            progressed = False
            for tail in list(self._tails.values()):
                if not tail.closed and not self._waits(tail):
                    progressed |= await self._read(ctx, tail)
            if not progressed:
                await ctx.clock.sleep(self.config.poll_interval_ms / 1000)

    def _waits(self, tail: _Tail) -> bool:
        """Whether `tail` waits for a rotated-away file to be finished first."""
        tail.behind = {k for k in tail.behind if k in self._tails and not self._tails[k].closed}
        return bool(tail.behind)

    async def _persist_loop(self) -> None:
        last: list[Position] | None = None
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()  # acks landing during the write trigger the next one
            snapshot = self.positions()
            if snapshot != last:
                await anyio.to_thread.run_sync(self._store.save, snapshot)
                last = snapshot

    async def _shutdown(self) -> None:
        with anyio.move_on_after(self.config.drain_timeout_s):
            while self._outstanding():
                self._dirty = anyio.Event()
                await self._dirty.wait()
        self._stopped = True
        if self._tails:
            await anyio.to_thread.run_sync(self._store.save, self.positions())
        for tail in self._tails.values():
            if not tail.closed:
                os.close(tail.fd)
                tail.closed = True
        if self._outstanding():
            self._log.warning("ndjson_stopped_with_unacked_lines", lines=self._outstanding())

    def _outstanding(self) -> int:
        """Lines sent whose ack may still come, not counting one cancelled mid-send."""
        count = sum(t.tracker.pending for t in self._tails.values())
        if self._in_doubt is not None:
            tail, index = self._in_doubt
            count -= 0 if tail.tracker.acked(index) else 1
        return count

    def positions(self) -> list[Position]:
        """Current durable-to-be positions of every tracked file (what the next save writes)."""
        out = []
        for t in self._tails.values():
            head = t.head[: min(t.tracker.committed, HEAD_BYTES)]
            out.append(
                Position(
                    t.key[0], t.key[1], t.path, t.tracker.committed, len(head), fingerprint(head)
                )
            )
        return out

    def _acked(self, tail: _Tail, index: int) -> None:
        if tail.tracker.mark(index):
            self._dirty.set()
            if self._stopped and not self._outstanding():
                # A late ack after shutdown saved: persist synchronously, once, as nothing else will.
                self._store.save(self.positions())
        else:
            self._dirty.set()  # wakes the shutdown wait even when the offset did not move

    # ---- discovering files ---------------------------------------------------------------------

    async def _scan(self, stored: dict[FileKey, Position] | None, first: bool) -> None:
        matched = await anyio.to_thread.run_sync(glob_files, self.config.paths)
        for key, tail in list(self._tails.items()):
            if key not in matched and not tail.closed:
                tail.gone_rounds += 1
            if tail.closed and not tail.tracker.pending:
                del self._tails[key]  # fully read and acknowledged: forget it
                self._dirty.set()
        if first and stored:
            await self._recover_rotated(stored, matched)
        # Files rotated away are finished (to EOF, final unterminated line included) before any
        # file that appears after them is read: lines keep their order across a rotation.
        draining = {k for k, t in self._tails.items() if t.gone_rounds and not t.closed}
        for key, path in matched.items():
            known = self._tails.get(key)
            if known is not None:
                known.path, known.gone_rounds = path, 0
                continue
            at_end = first and stored is None and self.config.start_at == "end"
            opened = await anyio.to_thread.run_sync(open_file, path, key)
            if opened is None:
                continue  # replaced between glob and open; the next scan sees the new one
            fd, size, head = opened
            offset = self._resume_at(path, (stored or {}).get(key), size, head, at_end)
            tail = _Tail(key, path, fd, offset, AckTracker(offset), head, behind=draining)
            self._tails[key] = tail
            self._dirty.set()  # save the start position now (matters for start_at = "end")
            self._log.info("ndjson_following", path=path, offset=offset)
        for tail in self._tails.values():
            if not tail.closed and tail.gone_rounds == 0:
                await self._check_truncation(tail)

    async def _recover_rotated(
        self, stored: dict[FileKey, Position], matched: dict[FileKey, str]
    ) -> None:
        """Files rotated away while stopped: found by identity beside their old path, finished
        from their saved position before anything newer (lines appended before the rotation
        are neither skipped nor repeated)."""
        for key, pos in stored.items():
            if key in matched:
                continue
            path = await anyio.to_thread.run_sync(find_by_identity, pos.path, key)
            opened = None if path is None else await anyio.to_thread.run_sync(open_file, path, key)
            if path is None or opened is None:
                continue  # deleted since (or moved elsewhere): nothing left to read there
            fd, size, head = opened
            if not pos.matches_head(head) or size < pos.offset:
                os.close(fd)  # the identity was reused by another file
                continue
            self._tails[key] = _Tail(
                key, path, fd, pos.offset, AckTracker(pos.offset), head, gone_rounds=1
            )
            self._log.info("ndjson_finishing_rotated", path=path, offset=pos.offset)

    def _resume_at(
        self, path: str, pos: Position | None, size: int, head: bytes, at_end: bool
    ) -> int:
        if pos is None:
            return size if at_end else 0
        if not pos.matches_head(head):
            self._log.warning("ndjson_file_replaced", path=path, was=pos.path)
            return 0
        if size < pos.offset:
            self._log.warning("ndjson_truncated", path=path, size=size, position=pos.offset)
            return 0
        return pos.offset

    async def _check_truncation(self, tail: _Tail) -> None:
        size = (await anyio.to_thread.run_sync(os.fstat, tail.fd)).st_size
        if size < tail.offset:
            self._log.warning("ndjson_truncated", path=tail.path, size=size, position=tail.offset)
            tail.tracker.add(0, done=True)
            tail.offset, tail.partial, tail.skipping, tail.head = 0, b"", False, b""
            self._dirty.set()

    # ---- reading -------------------------------------------------------------------------------

    async def _read(self, ctx: SourceContext, tail: _Tail) -> bool:
        """Read what is there (a renamed-away file: all of it, then close it); True if any."""
        got = False
        rounds = 0
        while tail.gone_rounds or rounds < _CHUNKS_PER_ROUND:
            rounds += 1
            start = tail.offset
            data = await anyio.to_thread.run_sync(os.pread, tail.fd, _CHUNK, start)
            if not data:
                break
            got = True
            tail.offset += len(data)
            if start < HEAD_BYTES:
                tail.head = (tail.head[:start] + data)[:HEAD_BYTES]
            await self._lines(ctx, tail, start - len(tail.partial), tail.partial + data)
        if not got and tail.gone_rounds >= 2:
            # Gone for a whole poll and drained: the writer has moved on to the new file.
            if tail.partial and not tail.skipping:
                await self._line(
                    ctx, tail, tail.offset - len(tail.partial), tail.partial, tail.offset
                )
            tail.partial = b""
            os.close(tail.fd)
            tail.closed = True
            self._log.info("ndjson_finished", path=tail.path)
        return got

    async def _lines(self, ctx: SourceContext, tail: _Tail, start: int, buf: bytes) -> None:
        *lines, tail.partial = buf.split(b"\n")
        for line in lines:
            end = start + len(line) + 1
            if tail.skipping:
                tail.tracker.add(end, done=True)  # the rest of an over-long line ends here
                tail.skipping = False
            else:
                await self._line(ctx, tail, start, line, end)
            start = end
        limit = self.config.max_line_bytes
        if not tail.skipping and len(tail.partial) > limit:
            await self._reject(tail, start, tail.partial[:limit], "row_too_large", _too_long(limit))
            tail.skipping = True
        if tail.skipping:
            tail.partial = b""  # never hold an over-long line in memory

    async def _line(
        self, ctx: SourceContext, tail: _Tail, start: int, line: bytes, end: int
    ) -> None:
        line = line.removesuffix(b"\r")
        limit = self.config.max_line_bytes
        if not line.strip():
            tail.tracker.add(end, done=True)
            return
        if len(line) > limit:
            await self._reject(tail, start, line[:limit], "row_too_large", _too_long(limit))
            tail.tracker.add(end, done=True)
            return
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            await self._reject(tail, start, line, "invalid_json", f"invalid JSON: {exc}")
            tail.tracker.add(end, done=True)
            return
        if not isinstance(row, dict):
            detail = f"expected a JSON object, got {type(row).__name__}"
            await self._reject(tail, start, line, "not_an_object", detail)
            tail.tracker.add(end, done=True)
            return
        index = tail.tracker.add(end)

        def ack(_seq: int | None) -> None:
            self._acked(tail, index)

        # Backpressure lands here: a full pipeline makes the tailer wait (files can wait).
        self._in_doubt = (tail, index)
        await ctx.send.send(Envelope(self.config.table, row, self.name, ack))
        self._in_doubt = None

    async def _reject(self, tail: _Tail, start: int, line: bytes, rule: str, detail: str) -> None:
        position = f"{tail.path}:{start}"
        if self._dead_letter is None:
            self._log.error("ndjson_bad_line", position=position, rule=rule, detail=detail)
            return
        # Awaited before the position may pass the line: a bad line is never silently lost.
        await self._dead_letter(
            self.config.table, raw_row(line), rule=rule, detail=detail, position=position
        )
        self._dirty.set()


def _too_long(limit: int) -> str:
    return f"line is longer than max_line_bytes ({limit}); kept truncated to {limit} bytes"
