"""Rows Snowflake rejects are counted and readable in the error table; good rows still commit."""

from __future__ import annotations

from pathlib import Path

import anyio

from streamd.daemon.run import Daemon
from streamd.standin.server import Standin
from streamd.testing import ListSource, standin_query

from .conftest import daemon_config

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def _row(i: int) -> dict[str, object]:
    return {
        "EVENT_ID": f"t:{i}",
        "EVENT_TIMESTAMP": "2026-11-23T10:00:00.000000",
        "EQUIPMENT_ID": "EQ-0001",
        "TEMPERATURE": 70.5,
    }


def _query(standin: Standin, statement: str) -> list[list[str | None]]:
    return standin_query(standin.url, statement)


async def test_bad_rows_counted_good_rows_committed(standin: Standin, tmp_path: Path) -> None:
    """Wrong type and missing NOT NULL values are rejected row by row, never the whole batch."""
    rows = [_row(i) for i in range(100)]
    rows[10]["TEMPERATURE"] = "very hot"
    del rows[20]["EQUIPMENT_ID"]
    rows[30]["NO_SUCH_COLUMN"] = 1
    config = daemon_config(standin, tmp_path / "state")
    daemon = Daemon(config, sources=[ListSource("t", SENSOR, rows)], tables=[SENSOR])
    summary = await daemon.run(duration=30)

    assert summary.tables[SENSOR].produced == 100
    assert summary.uncommitted == 0
    assert daemon.metrics.value("streamd_rows_errored", table=SENSOR) == 3
    assert daemon.writers[SENSOR].snapshot()["rows_error_count"] == 3
    table_ids = await anyio.to_thread.run_sync(_query, standin, f"select EVENT_ID from {SENSOR}")
    assert sorted(r[0] for r in table_ids) == sorted(
        f"t:{i}" for i in range(100) if i not in (10, 20, 30)
    )
    errors = await anyio.to_thread.run_sync(
        _query, standin, "select count(*) from MANUFACTURING_DEMO._STANDIN.ERROR_TABLE"
    )
    assert errors == [["3"]]
