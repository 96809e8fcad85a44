"""`streamd run`'s exit code: 0 when every row produced was handled (committed or dead-lettered)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def test_dead_lettered_rows_are_handled_and_the_run_exits_0(tmp_path: Path) -> None:
    config = tmp_path / "streamd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[target.standin]\ncommit_delay_ms = 100\n"
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
        '[[sources]]\nkind = "manufacturing"\nequipment_count = 2\n'
        # Every sensor reading is above 0 degrees: all of them break the rule.
        f'[tables."{SENSOR}".columns.TEMPERATURE]\ntype = "number"\nmax = 0\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "streamd", "run", "--config", str(config), "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stopped = [
        orjson.loads(line)
        for line in done.stdout.splitlines() + done.stderr.splitlines()
        if '"daemon_stopped"' in line
    ]
    assert len(stopped) == 1
    sensor = stopped[0]["tables"][SENSOR]
    assert sensor["rejected"] > 0
    assert sensor["produced"] == sensor["rejected"] + sensor["committed"]
    assert sensor["uncommitted"] == 0
