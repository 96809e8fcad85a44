"""Knowing when Snowpipe has loaded a file: insertReport first, loadHistoryScan as a backstop,
and resubmission of files it seems to have never seen.

insertFiles' 200 only means "queued" (§3.1). insertReport is a 10-minute tail of load events
(§3.2): cheap, polled while files are pending. A file it has not shown after `scan_after_s` (the
report window passed, or the file was already loaded before a crash and Snowpipe skipped the
resubmission, which makes no new event) is looked up with loadHistoryScan from just before the file
was first cut (§3.3, rate-limited, so only then). A file neither shows by `resubmit_after_s` is
submitted again; its name is deterministic, so this can never load it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio

from streamd.clock import Clock
from streamd.errors import RetryableError
from streamd.logs import get_logger
from streamd.sinks.retry import retrying
from streamd.snowflake.pipe_ingest import FileReport, PipeIngestClient

CLOCK_SKEW_S = 5.0
"""Tolerance between our clock and Snowflake's when telling an old load event from a new one."""
HISTORY_MARGIN_S = 120.0
"""loadHistoryScan starts this long before a file was cut (clock skew, slow uploads)."""


@dataclass(frozen=True, slots=True)
class ConfirmPolicy:
    """Timing of confirmation (from `FilesConfig`)."""

    report_poll_s: float
    scan_after_s: float
    resubmit_after_s: float


@dataclass
class _Pending:
    path: str
    size: int
    created_wall: float
    submitted_at: float
    """Monotonic time of the latest insertFiles for it."""
    submitted_wall: float
    scan_now: bool
    done: anyio.Event = field(default_factory=anyio.Event)
    report: FileReport | None = None
    resubmits: int = 0


class FileConfirmer:
    """Submits files to one pipe and tells each waiter its file's final load event."""

    def __init__(
        self,
        client: PipeIngestClient,
        clock: Clock,
        policy: ConfirmPolicy,
        *,
        on_retry: Callable[[RetryableError, int], None],
        on_resubmit: Callable[[str], None],
    ) -> None:
        self.client = client
        self._clock = clock
        self._policy = policy
        self._on_retry = on_retry
        self._on_resubmit = on_resubmit
        self._pending: dict[str, _Pending] = {}
        self._wake = anyio.Event()
        self._log = get_logger(pipe=client.pipe)

    @property
    def pending(self) -> int:
        """Files submitted and not yet seen finished."""
        return sum(1 for p in self._pending.values() if p.report is None)

    async def submit(
        self, files: list[tuple[str, int, float]], *, maybe_loaded: bool = False
    ) -> None:
        """insertFiles for (path, size, created wall time) entries; `maybe_loaded` files (from
        before a restart) are looked up in the load history at once."""
        now = self._clock.monotonic()
        for path, size, created in files:
            if path not in self._pending:
                self._pending[path] = _Pending(
                    path, size, created, now, self._clock.wall(), maybe_loaded
                )
        await retrying(
            lambda: self.client.ingest_files([(p, s) for p, s, _ in files]),
            self._clock,
            self._on_retry,
        )
        self._wake.set()

    async def wait(self, path: str) -> FileReport:
        """The file's final load event (LOADED, PARTIALLY_LOADED or LOAD_FAILED)."""
        pending = self._pending[path]
        await pending.done.wait()
        self._pending.pop(path, None)
        assert pending.report is not None
        return pending.report

    async def run(self) -> None:
        """Poll until cancelled: insertReport while files are pending, then the backstops."""
        while True:
            if not any(p.report is None for p in self._pending.values()):
                wake = self._wake
                await wake.wait()
                self._wake = anyio.Event()
            try:
                await self._poll_once()
            except RetryableError as err:
                self._on_retry(err, 1)
            await self._clock.sleep(self._policy.report_poll_s)

    async def _poll_once(self) -> None:
        reports, complete = await self.client.insert_report()
        self._apply(reports)
        now = self._clock.monotonic()
        waiting = [p for p in self._pending.values() if p.report is None]
        if not complete:
            # Events were missed (we polled too rarely): look every waiting file up at once.
            for p in waiting:
                p.scan_now = True
        overdue = [
            p for p in waiting if p.scan_now or now - p.submitted_at >= self._policy.scan_after_s
        ]
        if overdue:
            start = min(p.created_wall for p in overdue) - HISTORY_MARGIN_S
            found = await self.client.load_history_scan(datetime.fromtimestamp(start, UTC))
            self._apply(found)
            for p in overdue:
                p.scan_now = False
        stale = [
            p
            for p in self._pending.values()
            if p.report is None and now - p.submitted_at >= self._policy.resubmit_after_s
        ]
        if stale:
            for p in stale:
                p.submitted_at, p.resubmits = now, p.resubmits + 1
                p.submitted_wall = self._clock.wall()
                self._on_resubmit(p.path)
            await self.client.ingest_files([(p.path, p.size) for p in stale])

    def _apply(self, reports: list[FileReport]) -> None:
        for report in reports:
            pending = self._pending.get(report.path)
            if pending is None or pending.report is not None or not report.finished:
                continue
            if not report.loaded and _before(report, pending.submitted_wall - CLOCK_SKEW_S):
                # A failure from an earlier attempt (Snowpipe retries failed files when they are
                # submitted again); a load, whenever it happened, stands.
                continue
            pending.report = report
            pending.done.set()


def _before(report: FileReport, wall: float) -> bool:
    if not report.last_insert_time:
        return False
    try:
        at = datetime.fromisoformat(report.last_insert_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    return at.timestamp() < wall
