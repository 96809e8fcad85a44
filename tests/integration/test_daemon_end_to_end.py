"""The real daemon against the real stand-in over HTTP: every produced EVENT_ID lands exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streamd.config.model import parse
from streamd.daemon.run import Daemon
from streamd.standin.storage.database import query_offline

TABLES = ("SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW")


def _config_text(state_dir: Path, *, interval_ms: float = 10, extra: str = "") -> str:
    return f"""
state_dir = "{state_dir}"
[target]
kind = "local"
[target.standin]
commit_delay_ms = 100
[delivery]
linger_ms = 50
status_poll_ms = 50
drain_timeout_s = 20
{extra}
[admin]
port = 0
[[sources]]
kind = "manufacturing"
equipment_count = 5
line_count = 2
product_count = 3
sensor_interval_ms = {interval_ms}
production_interval_ms = {interval_ms}
quality_interval_ms = {interval_ms}
"""


def _counts(state_dir: Path, table: str) -> tuple[int, int]:
    _, rows = query_offline(
        state_dir / "standin",
        f"select count(*), count(distinct EVENT_ID) from MANUFACTURING_DEMO.RAW_DATA.{table}",
    )
    total, distinct = rows[0]
    return int(total), int(distinct)  # type: ignore[call-overload]


async def test_every_produced_row_committed_exactly_once(tmp_path: Path) -> None:
    """A 3-second run drains to zero uncommitted; table counts equal the produced counts."""
    config = parse(_config_text(tmp_path / "state"), path="test.toml")
    summary = await Daemon(config).run(duration=3)

    assert summary.uncommitted == 0
    for table in TABLES:
        counts = summary.tables[f"MANUFACTURING_DEMO.RAW_DATA.{table}"]
        assert counts.produced > 50
        assert counts.committed == counts.produced
        assert _counts(tmp_path / "state", table) == (counts.produced, counts.produced)


async def test_restart_continues_ids_without_repeats(tmp_path: Path) -> None:
    """A second run on the same state adds rows with new ids: the table stays duplicate-free."""
    state = tmp_path / "state"
    config = parse(_config_text(state), path="test.toml")
    first = await Daemon(config).run(duration=1.5)
    second = await Daemon(config).run(duration=1.5)
    for table in TABLES:
        name = f"MANUFACTURING_DEMO.RAW_DATA.{table}"
        produced = first.tables[name].produced + second.tables[name].produced
        assert _counts(state, table) == (produced, produced)


@pytest.mark.slow
def test_cli_run_then_sql(tmp_path: Path) -> None:
    """`streamd run --duration` exits 0 and `streamd sql` prints two equal counts matching the summary."""
    config_path = tmp_path / "streamd.toml"
    config_path.write_text(_config_text(tmp_path / "state", interval_ms=50))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamd",
            "run",
            "--config",
            str(config_path),
            "--duration",
            "3",
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr + run.stdout[-2000:]
    events = [orjson.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    stopped = next(e for e in events if e["event"] == "daemon_stopped")
    produced = stopped["tables"]["MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"]["produced"]
    assert produced > 0

    sql = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamd",
            "sql",
            "--config",
            str(config_path),
            "select count(*), count(distinct EVENT_ID) from MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert sql.returncode == 0, sql.stderr
    values = sql.stdout.strip().splitlines()[-1].split("\t")
    assert values == [str(produced), str(produced)]


async def test_retail_generators_land_exactly_once(tmp_path: Path) -> None:
    """The retail source's four tables fill through the same path, without duplicates."""
    state = tmp_path / "state"
    config = parse(
        f'state_dir = "{state}"\n[target.standin]\ncommit_delay_ms = 100\n'
        "[delivery]\nlinger_ms = 50\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
        '[[sources]]\nkind = "retail"\npos_interval_ms = 20\nclick_interval_ms = 20\n'
        "ecommerce_interval_ms = 20\ncustomer_change_interval_ms = 20\n",
        path="test.toml",
    )
    summary = await Daemon(config).run(duration=2)
    assert summary.uncommitted == 0
    for table, counts in summary.tables.items():
        assert counts.produced > 0, table
        _, rows = query_offline(
            state / "standin", f"select count(*), count(distinct EVENT_ID) from {table}"
        )
        assert rows[0] == (counts.produced, counts.produced), table
