"""`streamd setup` as a user runs it: a fresh state dir and no daemon, so setup starts the stand-in
itself; and a failing statement stops with one line naming file:line and Snowflake's message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamd.cli.setup import plan, run_planned
from streamd.errors import SqlError
from tests.conftest import StandinFactory
from tests.integration.standin.sql_client import sql_client


def _streamd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamd", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.slow
def test_setup_without_daemon_starts_the_standin(tmp_path: Path) -> None:
    config = tmp_path / "streamd.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[admin]\nport = 0\n')
    expected = len(plan(["manufacturing"]))
    result = _streamd("setup", "--config", str(config), "--domain", "manufacturing")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"{expected} statements applied"
    assert len(lines) == expected + 1
    assert "TASK_LOAD_SENSOR_FACTS" in result.stdout
    # Run again: idempotent. Then read the files the stand-in left behind, offline.
    again = _streamd("setup", "--config", str(config), "--domain", "manufacturing")
    assert again.returncode == 0, again.stderr
    facts = _streamd(
        "sql",
        "--config",
        str(config),
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_catalog = "
        "'MANUFACTURING_DEMO' AND table_name LIKE 'FACT_%'",
    )
    assert facts.returncode == 0, facts.stderr
    assert facts.stdout.strip().splitlines()[-1] == "3"


async def test_failure_names_file_and_line(make_standin: StandinFactory, tmp_path: Path) -> None:
    domain = tmp_path / "sql" / "broken"
    domain.mkdir(parents=True)
    (domain / "10_bad.sql").write_text(
        "CREATE DATABASE IF NOT EXISTS BROKEN;\n\nSELECT * FROM BROKEN.NOPE.MISSING;\nSELECT 1;\n"
    )
    lines: list[str] = []
    async with sql_client(make_standin()) as c:
        with pytest.raises(SqlError) as err:
            await run_planned(c, plan(root=tmp_path / "sql"), lines.append)
    message = str(err.value)
    assert message.startswith("sql/broken/10_bad.sql:3: ")
    assert "MISSING" in message
    assert len(lines) == 1  # the statement after the failure never ran


async def test_warehouses_are_names(make_standin: StandinFactory) -> None:
    async with sql_client(make_standin()) as c:
        created = await c.execute("CREATE WAREHOUSE IF NOT EXISTS WH WAREHOUSE_SIZE = 'XSMALL'")
        again = await c.execute("CREATE WAREHOUSE IF NOT EXISTS WH")
        with pytest.raises(SqlError, match="already exists"):
            await c.execute("CREATE WAREHOUSE WH")
        await c.execute("ALTER WAREHOUSE WH SUSPEND")
        shown = (await c.execute("SHOW WAREHOUSES")).rows
        await c.execute("DROP WAREHOUSE WH")
        with pytest.raises(SqlError, match="does not exist"):
            await c.execute("DROP WAREHOUSE WH")
    assert created.rows == [["Warehouse WH successfully created."]]
    assert again.rows == [["WH already exists, statement succeeded."]]
    assert [r[0] for r in shown] == ["WH"]
