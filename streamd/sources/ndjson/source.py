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
  finished from its saved position before the new file is read. Any number of rotations between
  two looks (or while stopped) are followed the same way: a file beside a followed path named like
  its rotation (`app.ndjson.1`, `app.ndjson-20261208`; not compressed ones) whose identity streamd
  has not accounted for is a file that was live and rotated away unseen; it is read from its
  start, oldest first, before anything newer. Identities accounted for (read to the end, or
  present when streamd first looked: those are history, not read) are kept with the positions.
- Copy-truncate: a rotated copy whose first bytes are those of a followed file that was just
  truncated is read from where that file's reading stopped, so the lines written between the last
  read and the truncation are not lost. A copy-truncate that regrows past the old position
  between two polls cannot be told from appends (as for any tailer).

Why polling: inotify is Linux-only and misses changes on network filesystems; at EOF the source
sleeps `poll_interval_ms` between reads (and globs), and reads back to back while there is data.
"""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import anyio.to_thread
import orjson

from streamd.logs import get_logger
from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.ndjson.config import MiB, NdjsonSourceConfig
from streamd.sources.ndjson.files import (
    Tail,
    find_by_identity,
    glob_files,
    open_file,
    rotated_siblings,
)
from streamd.sources.ndjson.position import (
    HEAD_BYTES,
    AckTracker,
    FileKey,
    Position,
    PositionStore,
    Seen,
    fingerprint,
)
from streamd.sources.rejects import DeadLetter, raw_row

_CHUNK = MiB
_CHUNKS_PER_ROUND = 8  # per live file per round, so one busy file cannot starve the others


class NdjsonSource:
    """Follows files matching `config.paths`; positions live in `<state_dir>/positions.json`."""

    def __init__(
        self, config: NdjsonSourceConfig, state_dir: Path, dead_letter: DeadLetter | None = None
    ) -> None:
        self.config = config
        self.name = config.name
        self._store = PositionStore(state_dir / "positions.json")
        self._dead_letter = dead_letter
        self._tails: dict[FileKey, Tail] = {}
        self._seen: dict[FileKey, Seen] = {}
        self._needs_baseline = True  # until the rotated files present at the first look are known
        self._dirty = anyio.Event()
        self._stopped = False
        # The line being sent: if cancelled mid-send, whether the stream took it is unknowable,
        # so shutdown does not wait for its ack (if it was taken, the late ack still saves).
        self._in_doubt: tuple[Tail, int] | None = None
        self._log = get_logger(source=config.name)

    # ---- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        """Follow the files until cancelled (or until nobody receives any more)."""
        stored = await anyio.to_thread.run_sync(self._store.load)
        seen = await anyio.to_thread.run_sync(self._store.load_seen)
        self._seen, self._needs_baseline = seen or {}, seen is None
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

    def _waits(self, tail: Tail) -> bool:
        """Whether `tail` waits for a rotated-away file to be finished first."""
        tail.behind = {k for k in tail.behind if k in self._tails and not self._tails[k].closed}
        return bool(tail.behind)

    async def _persist_loop(self) -> None:
        last: tuple[list[Position], list[Seen]] | None = None
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()  # acks landing during the write trigger the next one
            snapshot = (self.positions(), list(self._seen.values()))
            if snapshot != last:
                await anyio.to_thread.run_sync(self._store.save, *snapshot)
                last = snapshot

    async def _shutdown(self) -> None:
        with anyio.move_on_after(self.config.drain_timeout_s):
            while self._outstanding():
                self._dirty = anyio.Event()
                await self._dirty.wait()
        self._stopped = True
        if self._tails or self._seen:
            await anyio.to_thread.run_sync(self._save)
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

    def _save(self) -> None:
        self._store.save(self.positions(), list(self._seen.values()))

    def _acked(self, tail: Tail, index: int) -> None:
        if tail.tracker.mark(index):
            self._dirty.set()
            if self._stopped and not self._outstanding():
                # A late ack after shutdown saved: persist synchronously, once, as nothing else will.
                self._save()
        else:
            self._dirty.set()  # wakes the shutdown wait even when the offset did not move

    # ---- discovering files ---------------------------------------------------------------------

    async def _scan(self, stored: dict[FileKey, Position] | None, first: bool) -> None:
        matched = await anyio.to_thread.run_sync(glob_files, self.config.paths)
        for key, tail in list(self._tails.items()):
            if key not in matched and not tail.closed:
                tail.gone_rounds += 1
            if tail.closed and not tail.tracker.pending:
                del self._tails[key]  # fully read and acknowledged: accounted for
                self._seen[key] = Seen.of(key, tail.head)
                self._dirty.set()
        if first and stored:
            await self._recover_rotated(stored, matched)
        live = {*matched.values(), *(t.path for t in self._tails.values())}
        live.update(p.path for p in (stored or {}).values())
        siblings = await anyio.to_thread.run_sync(rotated_siblings, live)
        if len(self._seen) != len(kept := {k: v for k, v in self._seen.items() if k in siblings}):
            self._seen = kept  # deleted since: their identities may be reused
            self._dirty.set()
        await self._follow_unseen(siblings, baseline=self._needs_baseline)
        self._needs_baseline = False
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
            tail = Tail(key, path, fd, offset, AckTracker(offset), head, behind=draining)
            self._tails[key] = tail
            self._dirty.set()  # save the start position now (matters for start_at = "end")
            self._log.info("ndjson_following", path=path, offset=offset)
        for tail in self._tails.values():
            if not tail.closed and tail.gone_rounds == 0:
                await self._check_truncation(tail)

    async def _follow_unseen(
        self, siblings: dict[FileKey, tuple[str, tuple[int, int]]], *, baseline: bool
    ) -> None:
        """Rotated files not accounted for: history at the first look, else files that were live
        and rotated away between two looks; those are read oldest first, before anything newer."""
        waiting = {k for k, t in self._tails.items() if t.gone_rounds and not t.closed}
        for key, (path, _) in sorted(siblings.items(), key=lambda item: item[1][1]):
            if key in self._tails:
                continue
            opened = await anyio.to_thread.run_sync(open_file, path, key)
            if opened is None:
                continue
            fd, size, head = opened
            seen = self._seen.get(key)
            if baseline or (seen is not None and seen.matches_head(head)):
                os.close(fd)
                if baseline:
                    self._seen[key] = Seen.of(key, head)
                    self._dirty.set()
                continue
            offset, copied = await self._copy_of(head, size)
            self._tails[key] = Tail(
                key, path, fd, offset, AckTracker(offset), head, gone_rounds=1, behind=set(waiting)
            )
            waiting.add(key)
            if copied is not None:
                copied.behind.add(key)  # the copy's lines came before the truncated file's new ones
            self._dirty.set()
            self._log.info("ndjson_following_rotated", path=path, offset=offset)

    async def _copy_of(self, head: bytes, size: int) -> tuple[int, Tail | None]:
        """A copy-truncate's copy resumes at the read position of the followed file it copies
        (same first bytes, truncated since); any other file starts at 0."""
        for tail in self._tails.values():
            if tail.closed or tail.gone_rounds or not tail.head:
                continue
            resume = tail.offset - len(tail.partial)
            if head[: len(tail.head)] != tail.head or size < resume:
                continue
            now = (await anyio.to_thread.run_sync(os.fstat, tail.fd)).st_size
            if now < tail.offset:
                return resume, tail
        return 0, None

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
            self._tails[key] = Tail(
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

    async def _check_truncation(self, tail: Tail) -> None:
        size = (await anyio.to_thread.run_sync(os.fstat, tail.fd)).st_size
        if size < tail.offset:
            self._log.warning("ndjson_truncated", path=tail.path, size=size, position=tail.offset)
            tail.tracker.add(0, done=True)
            tail.offset, tail.partial, tail.skipping, tail.head = 0, b"", False, b""
            self._dirty.set()

    # ---- reading -------------------------------------------------------------------------------

    async def _read(self, ctx: SourceContext, tail: Tail) -> bool:
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

    async def _lines(self, ctx: SourceContext, tail: Tail, start: int, buf: bytes) -> None:
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
        self, ctx: SourceContext, tail: Tail, start: int, line: bytes, end: int
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

    async def _reject(self, tail: Tail, start: int, line: bytes, rule: str, detail: str) -> None:
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
