"""End-to-end freshness on the shipped manufacturing pipeline: sensor events produced by the daemon
→ SENSOR_DATA_RAW → stream → task → ANALYTICS.FACT_SENSOR_READINGS. Suspending the task makes
the freshness finding appear; resuming it clears it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from streamd.cli.setup import plan, run_planned
from streamd.daemon.run import Daemon
from streamd.reconciler.loop import Reconciler
from streamd.reconciler.report import HealthReport
from tests.conftest import StandinFactory
from tests.helpers import eventually

from .conftest import daemon_config, sql_client

SENSOR_TASK = "MANUFACTURING_DEMO.RAW_DATA.TASK_LOAD_SENSOR_FACTS"
FINAL = "MANUFACTURING_DEMO.ANALYTICS.FACT_SENSOR_READINGS"
TARGET_S = 8.0


async def _until(reconciler: Reconciler, what: str, predicate: Any) -> HealthReport:
    """The first report (one per 1 s cycle) that satisfies `predicate`."""
    report: HealthReport = await eventually(
        reconciler.next_report, predicate, within=60, interval=0, what=what
    )
    return report


def _freshness_finding(report: HealthReport) -> bool:
    return ("freshness", f"manufacturing: {FINAL}") in {f.key for f in report.findings}


@pytest.mark.slow
async def test_freshness_follows_the_pipeline_end_to_end(
    make_standin: StandinFactory, tmp_path: Path
) -> None:
    standin = make_standin(task_minute_s=1.0)  # '1 MINUTE' tasks run every second
    config = daemon_config(
        standin,
        tmp_path / "state",
        {
            "interval_s": 1,
            "freshness": [
                {
                    "source": "manufacturing",
                    "table": "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW",
                    "final": FINAL,
                    "column": "EVENT_TIMESTAMP",
                    "target_s": TARGET_S,
                }
            ],
        },
    )
    daemon = Daemon(config)
    async with sql_client(standin) as sql, anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(120):
            await daemon.ready.wait()
            reconciler = daemon.reconciler
            assert reconciler is not None
            await run_planned(sql, plan(["manufacturing"]), lambda _line: None)

            fresh = await _until(
                reconciler,
                "rows reach the fact table",
                lambda r: r.freshness[0].lag_s is not None and not _freshness_finding(r),
            )
            assert fresh.freshness[0].lag_s is not None
            assert fresh.freshness[0].lag_s < TARGET_S

            await sql.execute(f"ALTER TASK {SENSOR_TASK} SUSPEND")
            stuck = await _until(reconciler, "freshness finding", _freshness_finding)
            finding = next(f for f in stuck.findings if f.check == "freshness")
            assert finding.severity in ("warning", "critical")
            assert f"{FINAL} trails the newest event of" in finding.message
            assert ("task", SENSOR_TASK) in {f.key for f in stuck.findings}  # the reason, too

            await sql.execute(f"ALTER TASK {SENSOR_TASK} RESUME")
            await _until(reconciler, "freshness cleared", lambda r: not _freshness_finding(r))
        daemon.stop()
    assert (
        daemon.metrics.value("streamd_freshness_seconds", source="manufacturing", final=FINAL)
        < TARGET_S
    )
