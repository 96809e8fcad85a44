"""Confirming files: insertReport first, loadHistoryScan for the unreported, then resubmission;
and the manifest that makes a resubmission the same file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from streamd.sinks.files.confirm import ConfirmPolicy, FileConfirmer
from streamd.sinks.files.manifest import FileEntry, Manifest, file_path
from streamd.snowflake.pipe_ingest import FileReport
from streamd.testing import ManualClock


class FakePipe:
    """A scripted pipe: what insertReport and loadHistoryScan answer, and what was submitted."""

    pipe = "DB.S.P"

    def __init__(self) -> None:
        self.submitted: list[list[str]] = []
        self.report: list[FileReport] = []
        self.history: list[FileReport] = []
        self.scans: list[datetime] = []
        self.load_on_submission: int | None = None
        """Report the files loaded once they were submitted this many times."""

    async def ingest_files(self, files: list[tuple[str, int | None]]) -> None:
        self.submitted.append([p for p, _ in files])
        if len(self.submitted) == self.load_on_submission:
            self.report = [_loaded(p) for p, _ in files]

    async def insert_report(self) -> tuple[list[FileReport], bool]:
        out, self.report = self.report, []
        return out, True

    async def load_history_scan(self, start: datetime, end: Any = None) -> list[FileReport]:
        self.scans.append(start)
        return self.history


def _loaded(path: str, rows: int = 10, at: str | None = None) -> FileReport:
    return FileReport(path, "LOADED", rows, rows, 0, last_insert_time=at)


POLICY = ConfirmPolicy(report_poll_s=1, scan_after_s=10, resubmit_after_s=30)


async def _run(pipe: FakePipe, clock: ManualClock, steps: list[float], path: str) -> FileReport:
    resubmits: list[str] = []
    confirmer = FileConfirmer(
        pipe,  # type: ignore[arg-type]
        clock,
        POLICY,
        on_retry=lambda exc, attempt: None,
        on_resubmit=resubmits.append,
    )
    result: list[FileReport] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(confirmer.run)
        await confirmer.submit([(path, 100, clock.wall())])

        async def wait() -> None:
            result.append(await confirmer.wait(path))

        tg.start_soon(wait)
        for step in steps:
            await anyio.wait_all_tasks_blocked()
            clock.advance(step)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert result, "the file was never confirmed"
    return result[0]


async def test_insert_report_confirms_a_fresh_file() -> None:
    pipe, clock = FakePipe(), ManualClock()
    pipe.report = [_loaded("f1")]
    report = await _run(pipe, clock, [], "f1")
    assert report.loaded
    assert pipe.scans == []


async def test_unreported_file_is_found_in_the_load_history_after_scan_after() -> None:
    """A file loaded before a crash never gets a new insertReport event: the history has it."""
    pipe, clock = FakePipe(), ManualClock()
    pipe.history = [_loaded("f1")]
    report = await _run(pipe, clock, [1.0] * 11, "f1")
    assert report.loaded
    assert len(pipe.scans) == 1
    assert pipe.submitted == [["f1"]]


async def test_a_file_nobody_saw_is_resubmitted_then_confirmed() -> None:
    pipe, clock = FakePipe(), ManualClock()
    pipe.load_on_submission = 2  # Snowpipe loads it only after the resubmission
    report = await _run(pipe, clock, [1.0] * 35, "f1")
    assert report.loaded
    assert pipe.submitted == [["f1"], ["f1"]]
    assert len(pipe.scans) >= 1  # the history was searched before resubmitting


async def test_a_failure_older_than_the_submission_is_not_the_answer() -> None:
    """Snowpipe retries a failed file when it is submitted again: the old failure is skipped."""
    pipe, clock = FakePipe(), ManualClock()
    old = datetime.fromtimestamp(clock.wall() - 3600, UTC).isoformat().replace("+00:00", "Z")
    pipe.report = [FileReport("f1", "LOAD_FAILED", 0, 10, 10, "bad", 1, None, old)]
    pipe.history = [_loaded("f1")]
    report = await _run(pipe, clock, [1.0] * 11, "f1")
    assert report.loaded


async def test_manifest_survives_reopening_and_forgets_committed_files(tmp_path: Path) -> None:
    manifest = await Manifest.open(tmp_path / "lane")
    epoch = manifest.epoch
    for first in (1, 11, 21):
        path = file_path("DB.S.T", 0, epoch, first, first + 9)
        await manifest.add(FileEntry(path, first, first + 9, 0.0))
    await manifest.remove_upto(10)
    again = await Manifest.open(tmp_path / "lane")
    assert again.epoch == epoch
    assert [(e.first, e.last) for e in again.entries] == [(11, 20), (21, 30)]
    assert again.entries[0].path == f"T/{epoch}/000000000011-000000000020.ndjson.gz"
    assert again.last == 30
