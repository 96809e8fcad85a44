"""Rows breaking a table's rules never reach Snowflake and never disappear."""

from __future__ import annotations

from pathlib import Path

import orjson

from streamd.cli.inspect import render
from streamd.config.model import parse
from streamd.daemon.run import Daemon
from streamd.standin.storage.database import query_offline
from streamd.testing import ListSource

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


async def test_rule_breaking_rows_go_to_dead_letters(tmp_path: Path) -> None:
    """Two bad rows of ten: eight land, two are in the dead-letter file with their rule, counted."""
    config = parse(
        f'state_dir = "{tmp_path}"\n[target.standin]\ncommit_delay_ms = 100\n'
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
        f'[tables."{SENSOR}".columns.TEMPERATURE]\ntype = "number"\nmax = 500\n',
        path="t.toml",
    )
    rows = [
        {
            "EVENT_ID": f"t:{i}",
            "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
            "EQUIPMENT_ID": "EQ-1",
            "TEMPERATURE": 20.0,
        }
        for i in range(10)
    ]
    rows[3]["TEMPERATURE"] = 900.0
    rows[7]["TEMPERATURE"] = "hot"
    daemon = Daemon(config, sources=[ListSource("t", SENSOR, rows)], tables=[SENSOR])
    summary = await daemon.run(duration=30)

    assert summary.tables[SENSOR].produced == 10
    assert summary.tables[SENSOR].rejected == 2
    assert summary.uncommitted == 0
    lines = [
        orjson.loads(x)
        for x in (tmp_path / "dead_letters" / f"{SENSOR}.ndjson").read_bytes().splitlines()
    ]
    assert sorted((d["row"]["EVENT_ID"], d["rule"]) for d in lines) == [
        ("t:3", "TEMPERATURE.max"),
        ("t:7", "TEMPERATURE.type"),
    ]
    _, counted = query_offline(tmp_path / "standin", f"select count(*) from {SENSOR}")
    assert counted == [(8,)]
    status = daemon.status()
    assert {(r["rule"], r["rows"]) for r in status["rejected"]} == {
        ("TEMPERATURE.max", 1),
        ("TEMPERATURE.type", 1),
    }
    assert "TEMPERATURE.max" in render(status)
