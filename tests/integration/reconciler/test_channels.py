"""Findings from the daemon's own channels, against the real stand-in."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from streamd.daemon.run import Daemon
from streamd.reconciler.loop import Reconciler
from streamd.reconciler.report import HealthReport
from streamd.standin.server import Standin

from .conftest import daemon_config

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


async def _report_where(
    reconciler: Reconciler, predicate: object, cycles: int = 30
) -> HealthReport:
    """The first report (within `cycles` cycles) for which `predicate(report)` holds."""
    for _ in range(cycles):
        report = await reconciler.next_report()
        if predicate(report):  # type: ignore[operator]
            return report
    raise AssertionError(
        f"not seen in {cycles} cycles; last findings: {reconciler.report.findings}"
    )


@pytest.mark.slow
async def test_commit_lag_is_raised_while_commits_are_frozen_and_cleared_after(
    standin: Standin, tmp_path: Path
) -> None:
    config = daemon_config(
        standin,
        tmp_path / "state",
        {"interval_s": 1, "databases": [], "thresholds": {"channel_lag_s": 1.5}},
    )
    daemon = Daemon(config)
    lagging = ("channel", f"{SENSOR}/streamd_SENSOR_DATA_RAW")
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            await daemon.ready.wait()
            assert daemon.reconciler is not None
            first = await daemon.reconciler.next_report()
            assert lagging not in {f.key for f in first.findings}
            standin.faults.freeze_commits()
            raised = await _report_where(
                daemon.reconciler, lambda r: lagging in {f.key for f in r.findings}
            )
            finding = next(f for f in raised.findings if f.key == lagging)
            assert "rows not yet committed" in finding.message
            status = daemon.status()["reconciler"]
            assert any(f["object"] == lagging[1] for f in status["findings"])
            standin.faults.release_commits()
            await _report_where(
                daemon.reconciler, lambda r: lagging not in {f.key for f in r.findings}
            )
        daemon.stop()
    assert daemon.metrics.value("streamd_reconciler_cycles", outcome="complete") >= 3
