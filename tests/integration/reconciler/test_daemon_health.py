"""The daemon's admin endpoint carries the reconciler: /healthz degraded with reasons while a
task is suspended, /status findings that `inspect` renders in 80 columns, /metrics series."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from streamd.cli.inspect import render
from streamd.daemon.run import Daemon
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin

from .conftest import daemon_config

TASK = "MANUFACTURING_DEMO.RAW_DATA.T_ROLLUP"


@pytest.mark.slow
async def test_healthz_is_degraded_while_a_task_is_suspended(
    standin: Standin, sql: SqlApiClient, tmp_path: Path
) -> None:
    await sql.execute(
        f"CREATE TASK {TASK} WAREHOUSE = STREAMD_WH SCHEDULE = '60 MINUTE' "
        "AS SELECT COUNT(*) FROM MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
    )  # created suspended, like Snowflake
    config = daemon_config(standin, tmp_path / "state", {"interval_s": 1}, admin=True)
    daemon = Daemon(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            await daemon.ready.wait()
            assert daemon.reconciler is not None
            await daemon.reconciler.next_report()
            async with httpx.AsyncClient(base_url=str(daemon.admin_url), timeout=10) as http:
                degraded = (await http.get("/healthz")).json()
                status = (await http.get("/status")).json()
                metrics = (await http.get("/metrics")).text
                await sql.execute(f"ALTER TASK {TASK} RESUME")
                # A cycle may be under way already; the one after it surely started after RESUME.
                await daemon.reconciler.next_report()
                await daemon.reconciler.next_report()
                healthy = await http.get("/healthz")
        daemon.stop()
    assert degraded["status"] == "degraded"
    assert degraded["reasons"] == [
        f"task {TASK}: task is suspended (no reason given); nothing downstream of it moves"
    ]
    assert status["reconciler"]["databases"] == ["MANUFACTURING_DEMO"]
    assert [(f["check"], f["object"]) for f in status["reconciler"]["findings"]] == [("task", TASK)]
    text = render(status)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert f"CRIT task {TASK} since" in text
    assert 'streamd_reconciler_findings{severity="critical"} 1.0' in metrics
    assert healthy.status_code == 200
    assert healthy.json() == {"status": "ok"}
