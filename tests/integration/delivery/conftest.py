"""Run the real daemon against a stand-in (in its own thread) and count what landed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.daemon.status import RunSummary
from streamd.snowflake.keys import generate_key_pair
from streamd.standin.server import Standin
from streamd.testing import standin_query

TABLES = tuple(
    f"MANUFACTURING_DEMO.RAW_DATA.{t}"
    for t in ("SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW")
)
_KEY, _ = generate_key_pair()


def daemon_config(standin: Standin, state: Path, **delivery: Any) -> Config:
    """A small plant (5 producers per table at 100 rows/s) aimed at `standin`."""
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": _KEY.decode()},
            "delivery": {
                "linger_ms": 20,
                "status_poll_ms": 50,
                "drain_timeout_s": 60,
                "startup_timeout_s": 30,
                **delivery,
            },
            "admin": {"enabled": False},
            "log": {"level": "warning"},
            "sources": [
                {
                    "kind": "manufacturing",
                    "equipment_count": 5,
                    "line_count": 5,
                    "product_count": 5,
                    "sensor_interval_ms": 10,
                    "production_interval_ms": 10,
                    "quality_interval_ms": 10,
                }
            ],
        }
    )


def count_ids(standin: Standin, table: str) -> tuple[int, int]:
    """(rows, distinct EVENT_IDs) of `table`, through the running stand-in's SQL API."""
    [[total, distinct]] = standin_query(
        standin.url, f"select count(*), count(distinct EVENT_ID) from {table}"
    )
    return int(total or 0), int(distinct or 0)


RunAgainst = Callable[..., Awaitable[RunSummary]]


@pytest.fixture
def run_against(tmp_path: Path) -> RunAgainst:
    """`await run_against(standin, duration, **delivery)`: run, drain, and check exactly-once."""

    async def run(standin: Standin, duration: float, **delivery: Any) -> RunSummary:
        daemon = Daemon(daemon_config(standin, tmp_path / "state", **delivery))
        summary = await daemon.run(duration=duration)
        assert summary.uncommitted == 0
        standin.faults.clear()  # let the counting queries through
        for table in TABLES:
            produced = summary.tables[table].produced
            assert produced > 0
            counts = await anyio.to_thread.run_sync(count_ids, standin, table)
            assert counts == (produced, produced), f"{table}: {counts} vs produced {produced}"
        return summary

    return run
