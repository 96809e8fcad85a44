"""The admin endpoint while the daemon runs: readiness, Prometheus metrics, status."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx

from streamd.config.model import parse
from streamd.daemon.run import Daemon
from tests.helpers import eventually


async def test_readyz_and_metrics_while_running(tmp_path: Path) -> None:
    """/readyz is 200 once channels are open; /metrics carries the declared series."""
    config = parse(
        f'state_dir = "{tmp_path}"\n[target.standin]\ncommit_delay_ms = 100\n[admin]\nport = 0\n'
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n"
        '[[sources]]\nkind = "manufacturing"\nsensor_interval_ms = 10\n',
        path="t.toml",
    )
    daemon = Daemon(config)
    assert daemon.readiness() == ["starting: channels not open yet"]
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(30):
            await daemon.ready.wait()
        sensor = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
        await eventually(lambda: daemon.summary().tables[sensor].committed > 0)  # appends made
        async with httpx.AsyncClient(base_url=str(daemon.admin_url), timeout=10) as http:
            ready = await http.get("/readyz")
            health = await http.get("/healthz")
            metrics = (await http.get("/metrics")).text
        daemon.stop()
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "reasons": []}
    assert health.status_code == 200
    for series in (
        f'streamd_rows_produced_total{{table="{sensor}"}}',
        f'streamd_rows_committed_total{{table="{sensor}"}}',
        f'streamd_lane_depth_rows{{lane="{sensor}"}}',
        f'streamd_spool_bytes{{lane="{sensor}"}}',
        f'streamd_commit_lag_seconds{{lane="{sensor}"}}',
        'streamd_request_seconds_bucket{call="append"',
    ):
        assert series in metrics, series
    assert "stopping: draining" in daemon.readiness()
