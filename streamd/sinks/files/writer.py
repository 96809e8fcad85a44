"""Files mode: a lane's spooled rows become gzip NDJSON files, loaded by classic Snowpipe.

Per lane: the batcher cuts files (rows, bytes, age); each file is recorded in the lane's manifest
(durable, with its spool range), uploaded to the stage, announced with insertFiles, and confirmed
through insertReport / loadHistoryScan (`confirm.py`). A file's rows are released (the spool's
committed mark moves past them) only once its load event is final and handled, in order: LOADED
rows are committed; rows of a LOAD_FAILED or PARTIALLY_LOADED file are written to the dead-letter
file with Snowpipe's first error, counted and logged (`file_load_failed`), never dropped silently.

After a crash the manifest's files are rebuilt from their rows under the same names and submitted
again, before any new file is cut: Snowpipe skips those it had loaded, and the load history tells.
"""

from __future__ import annotations

import gzip
from typing import Any

import anyio
import orjson

from streamd.clock import Clock
from streamd.errors import RetryableError
from streamd.logs import get_logger
from streamd.metrics import Metrics
from streamd.pipeline.dead_letters import DeadLetters
from streamd.rows import Batch
from streamd.sinks.base import BatchSource
from streamd.sinks.files.confirm import FileConfirmer
from streamd.sinks.files.manifest import FileEntry, Manifest, file_path
from streamd.sinks.retry import retrying
from streamd.sinks.window import InflightWindow
from streamd.snowflake.pipe_ingest import FileReport
from streamd.snowflake.stage_upload import StageUploader


def gzip_file(body: bytes) -> bytes:
    """Deterministic gzip (no timestamp): the same rows give the same bytes."""
    return gzip.compress(body, compresslevel=6, mtime=0)


class FileWriter:
    """Delivers one lane's rows as files through one pipe (a `Sink`)."""

    def __init__(
        self,
        *,
        table: str,
        shard: int,
        batches: BatchSource,
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
        self._batches = batches
        self._manifest = manifest
        self._uploader = uploader
        self.confirmer = confirmer
        self._clock = clock
        self._metrics = metrics
        self._dead_letters = dead_letters
        self._inflight: InflightWindow[FileEntry] = InflightWindow(max_inflight_files)
        self._log = get_logger(table=table, pipe=confirmer.client.pipe)
        self.files_loaded = 0
        self.files_failed = 0
        self.rows_loaded = 0
        self.rows_failed = 0
        self.last_failure: dict[str, Any] | None = None
        self.is_open = False
        self.last_error: str | None = None

    @property
    def name(self) -> str:
        """The pipe the files go through, for operators."""
        return f"pipe {self.confirmer.client.pipe} (files)"

    @property
    def committed_offset(self) -> int:
        """The last row of the last file loaded and handled, in order (0: none)."""
        return self._batches.committed

    def commit_lag_s(self) -> float:
        """Age of the oldest file submitted and not yet confirmed; 0 when none is."""
        if not self._inflight:
            return 0.0
        return max(0.0, self._clock.wall() - self._inflight[0].created_wall)

    def snapshot(self) -> dict[str, Any]:
        """This lane's file delivery for `inspect` (the channel row's keys, plus file counts)."""
        failure = self.last_failure
        return {
            "table": self.table,
            "channel": f"files:{self.table.rsplit('.', 1)[-1]}"
            + (f"#{self.shard}" if self.shard else ""),
            "pipe": self.confirmer.client.pipe,
            "mode": "files",
            "open": self.is_open,
            "committed_offset_token": str(self._batches.committed),
            "spool": self._batches.stats(),
            "inflight_files": len(self._inflight),
            "inflight_rows": sum(e.rows for e in self._inflight),
            "commit_lag_s": round(self.commit_lag_s(), 3),
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
        """Drop manifest entries already committed; resume cutting after the rest."""
        await self._manifest.remove_upto(self._batches.committed)
        self._batches.replay_from(max(self._batches.committed, self._manifest.last) + 1)
        self.is_open = True

    async def run(self) -> None:
        """Resubmit unconfirmed files, then ship new ones until the lane ends and all are loaded."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.confirmer.run)
            tg.start_soon(self._confirm_in_order)
            recovered = list(self._manifest.entries)
            if recovered:
                self._log.info("files_recovering", files=len(recovered))
            for entry in recovered:
                await self._inflight.wait_room()
                await self._ship(entry, await self._rebuild(entry), maybe_loaded=True)
            while True:
                await self._inflight.wait_room()
                batch = await self._batches.next_batch()
                if batch is None:
                    break
                entry = self._entry(batch)
                await self._manifest.add(entry)
                data = await anyio.to_thread.run_sync(gzip_file, batch.body)
                await self._ship(entry, data, maybe_loaded=False)
            await self._inflight.wait_empty()
            tg.cancel_scope.cancel()

    def _entry(self, batch: Batch) -> FileEntry:
        first, last = batch.first_offset, batch.last_offset
        path = file_path(self.table, self.shard, self._manifest.epoch, first, last)
        return FileEntry(path, first, last, self._clock.wall())

    async def _rebuild(self, entry: FileEntry) -> bytes:
        """The file's bytes again, from the row range the manifest recorded (rows the spool
        dropped by when_full are gone: nothing more to send)."""
        runs = await self._batches.reread(entry.first, entry.last)
        return await anyio.to_thread.run_sync(gzip_file, b"".join(run.body for run in runs))

    async def _rows(self, entry: FileEntry) -> list[tuple[int, bytes]]:
        """(offset, NDJSON line) of each of the file's rows still stored."""
        runs = await self._batches.reread(entry.first, entry.last)
        return [
            (offset, line)
            for run in runs
            for offset, line in enumerate(run.body.split(b"\n")[:-1], run.first_offset)
        ]

    async def _ship(self, entry: FileEntry, data: bytes, *, maybe_loaded: bool) -> None:
        await retrying(lambda: self._uploader.upload(entry.path, data), self._clock, self._on_retry)
        await self.confirmer.submit(
            [(entry.path, len(data), entry.created_wall)], maybe_loaded=maybe_loaded
        )
        self._inflight.append(entry)
        self._log.debug("file_submitted", file=entry.path, rows=entry.rows, bytes=len(data))

    async def _confirm_in_order(self) -> None:
        while True:
            await self._inflight.wait_any()
            entry = self._inflight[0]
            report = await self.confirmer.wait(entry.path)
            await self._settle(entry, report)
            await self._batches.release(entry.last)
            await self._manifest.remove_upto(entry.last)
            self._inflight.popleft()

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

    def _on_retry(self, exc: RetryableError, attempt: int) -> None:
        reason = exc.code or str(exc.status)
        self.last_error = str(exc)
        self._metrics.retries.labels(self.table, reason).inc()
        self._log.warning("request_retried", reason=reason, status=exc.status, attempt=attempt)
