"""Files mode: a lane's spooled rows become gzip NDJSON files, loaded by classic Snowpipe.

Per lane: the batcher cuts files (rows, bytes, age); each file is recorded in the lane's manifest
(durable, with its spool range), uploaded to the stage, announced with insertFiles, and confirmed
through insertReport / loadHistoryScan (`file_confirm.py`). The spool's committed mark moves past
a file only once its load event is final and handled, in spool order: LOADED rows are committed;
rows of a LOAD_FAILED or PARTIALLY_LOADED file are written to the dead-letter file with Snowpipe's
first error, counted and logged (`file_load_failed`), never dropped silently.

After a crash the manifest's files are rebuilt from the spool under the same names and submitted
again, before any new file is cut: Snowpipe skips those it had loaded, and the load history tells.
"""

from __future__ import annotations

import gzip
from collections import deque
from typing import Any

import anyio
import orjson

from streamd.clock import Clock
from streamd.errors import RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.pipeline.batcher import Batcher
from streamd.pipeline.dead_letters import DeadLetters
from streamd.rows import Batch
from streamd.sinks.files.confirm import FileConfirmer
from streamd.sinks.files.manifest import FileEntry, Manifest, file_path
from streamd.sinks.retry import retrying
from streamd.snowflake.pipe_ingest import FileReport
from streamd.snowflake.stage_upload import StageUploader
from streamd.spool.chunk import RowRun


def gzip_file(body: bytes) -> bytes:
    """Deterministic gzip (no timestamp): the same rows give the same bytes."""
    return gzip.compress(body, compresslevel=6, mtime=0)


class FileWriter:
    """Delivers one lane's rows as files through one pipe."""

    def __init__(
        self,
        *,
        table: str,
        shard: int,
        batcher: Batcher,
        manifest: Manifest,
        uploader: StageUploader,
        confirmer: FileConfirmer,
        clock: Clock,
        metrics: Metrics,
        dead_letters: DeadLetters,
        max_inflight_files: int,
    ) -> None:
        self.table = table
        self.shard = shard
        self._batcher = batcher
        self._spool = batcher.spool
        self._manifest = manifest
        self._uploader = uploader
        self.confirmer = confirmer
        self._clock = clock
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._window = max_inflight_files
        self._inflight: deque[FileEntry] = deque()
        self._progress = anyio.Event()
        self._log = get_logger(table=table, pipe=confirmer.client.pipe)
        self.files_loaded = 0
        self.files_failed = 0
        self.rows_loaded = 0
        self.rows_failed = 0
        self.last_failure: dict[str, Any] | None = None
        self.is_open = False

    def snapshot(self) -> dict[str, Any]:
        """This lane's file delivery for `inspect` (the channel row's keys, plus file counts)."""
        oldest = self._inflight[0].created_wall if self._inflight else None
        failure = self.last_failure
        return {
            "table": self.table,
            "channel": f"files:{self.table.rsplit('.', 1)[-1]}"
            + (f"#{self.shard}" if self.shard else ""),
            "pipe": self.confirmer.client.pipe,
            "mode": "files",
            "open": self.is_open,
            "committed_offset_token": str(self._spool.committed),
            "spool": self._spool.stats(),
            "inflight_files": len(self._inflight),
            "inflight_rows": sum(e.rows for e in self._inflight),
            "commit_lag_s": 0.0 if oldest is None else round(self._clock.wall() - oldest, 3),
            "rows_inserted": self.rows_loaded,
            "rows_error_count": self.rows_failed,
            "files_loaded": self.files_loaded,
            "files_failed": self.files_failed,
            "last_error_message": None
            if failure is None
            else f"{failure['status']} {failure['file']}: {failure['first_error']}",
            "last_failure": failure,
        }

    async def open(self) -> None:
        """Drop manifest entries the spool already committed; resume cutting after the rest."""
        await self._manifest.remove_upto(self._spool.committed)
        self._batcher.start_at(max(self._spool.committed, self._manifest.last) + 1)
        self.is_open = True

    async def run(self) -> None:
        """Resubmit unconfirmed files, then ship new ones until the lane ends and all are loaded."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._confirm_in_order)
            recovered = list(self._manifest.entries)
            if recovered:
                self._log.info("files_recovering", files=len(recovered))
            for entry in recovered:
                await self._wait_window()
                await self._ship(entry, await self._rebuild(entry), maybe_loaded=True)
            while True:
                await self._wait_window()
                batch = await self._batcher.next_batch()
                if batch is None:
                    break
                entry = self._entry(batch)
                await self._manifest.add(entry)
                data = await anyio.to_thread.run_sync(gzip_file, batch.body)
                await self._ship(entry, data, maybe_loaded=False)
            while self._inflight:
                await self._wait_progress()
            tg.cancel_scope.cancel()

    def _entry(self, batch: Batch) -> FileEntry:
        first, last = batch.first_offset, batch.last_offset
        path = file_path(self.table, self.shard, self._manifest.epoch, first, last)
        return FileEntry(path, first, last, self._clock.wall())

    async def _rebuild(self, entry: FileEntry) -> bytes:
        """The file's bytes again, from the spool range the manifest recorded."""
        return await anyio.to_thread.run_sync(gzip_file, await self._body(entry))

    async def _body(self, entry: FileEntry) -> bytes:
        return b"".join(run.body() for run in await self._runs(entry))

    async def _rows(self, entry: FileEntry) -> list[tuple[int, bytes]]:
        return [row for run in await self._runs(entry) for row in run.lines()]

    async def _runs(self, entry: FileEntry) -> list[RowRun]:
        runs: list[RowRun] = []
        seq = entry.first
        while seq <= entry.last:
            run = await self._spool.read_run(seq, entry.last - seq + 1, 1 << 40)
            if not run.rows:
                break  # the spool lost these rows (dropped by when_full): nothing more to send
            runs.append(run)
            seq = run.last + 1
        return runs

    async def _ship(self, entry: FileEntry, data: bytes, *, maybe_loaded: bool) -> None:
        await retrying(lambda: self._uploader.upload(entry.path, data), self._clock, self._on_retry)
        await self.confirmer.submit(
            [(entry.path, len(data), entry.created_wall)], maybe_loaded=maybe_loaded
        )
        self._inflight.append(entry)
        self._signal_progress()
        self._log.debug("file_submitted", file=entry.path, rows=entry.rows, bytes=len(data))

    async def _confirm_in_order(self) -> None:
        while True:
            while not self._inflight:
                await self._wait_progress()
            entry = self._inflight[0]
            report = await self.confirmer.wait(entry.path)
            await self._settle(entry, report)
            self._inflight.popleft()
            await self._spool.commit(entry.last)
            await self._manifest.remove_upto(entry.last)
            self._signal_progress()

    async def _settle(self, entry: FileEntry, report: FileReport) -> None:
        self.rows_loaded += report.rows_inserted
        if report.loaded:
            self.files_loaded += 1
            self._metrics.files.labels(self.table, "loaded").inc()
            self._metrics.rows_committed.labels(self.table).inc(report.rows_inserted)
            self._log.info("file_loaded", file=entry.path, rows=report.rows_inserted)
            return
        self.files_failed += 1
        self.rows_failed += entry.rows - report.rows_inserted
        outcome = report.status.lower()
        self._metrics.files.labels(self.table, outcome).inc()
        self._metrics.rows_committed.labels(self.table).inc(report.rows_inserted)
        self.last_failure = {
            "file": entry.path,
            "status": report.status,
            "first_error": report.first_error,
            "line": report.first_error_line,
            "rows_parsed": report.rows_parsed,
            "rows_inserted": report.rows_inserted,
            "errors_seen": report.errors_seen,
        }
        self._log.error(
            "file_load_failed",
            **self.last_failure,
            fix="rows of the file are in the dead-letter file; fix the table or the rows and "
            "resend them",
        )
        # Snowpipe names only the first error: every row of the file is dead-lettered, so none
        # is lost (for a partial load some of them did load; the detail says how many).
        detail = (
            f"{report.status} {entry.path}: {report.first_error} (line {report.first_error_line});"
            f" {report.rows_inserted} of {entry.rows} rows loaded"
        )
        rule = f"file_{outcome}"
        for seq, payload in await self._rows(entry):
            row = orjson.loads(payload)
            await self._dead_letters.put(
                self.table, row, rule=rule, detail=detail, position=f"{entry.path}:{seq}"
            )

    async def _wait_window(self) -> None:
        while len(self._inflight) >= self._window:
            await self._wait_progress()

    async def _wait_progress(self) -> None:
        progress = self._progress
        await progress.wait()

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        self._metrics.retries.labels(self.table, reason).inc()
        self._log.warning("request_retried", reason=reason, status=exc.status, attempt=attempt)
