"""SIGKILL a daemon in files mode at random moments: every acknowledged row lands once, no file
is loaded twice, none is missed.

The stand-in runs in its own process (it survives the kills, as Snowflake would); the daemon writes
its files straight into the stand-in's stage directory on this machine.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from streamd.clock import SystemClock
from streamd.snowflake.keys import generate_key_pair, write_private
from streamd.spool import LaneSpool, SpoolConfig
from streamd.testing import standin_query, start_standin_process

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
KILLS = 6


@pytest.fixture
def standin_process(tmp_path: Path) -> Iterator[str]:
    """`streamd standin serve` in its own process; yields its URL."""
    proc, url = start_standin_process(tmp_path / "sf", "--commit-delay-ms", "200")
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        assert proc.stderr is not None
        proc.stderr.close()


async def _acknowledged(spool_dir: Path) -> int:
    spool = await LaneSpool.open(spool_dir / SENSOR, SpoolConfig(fsync="never"), SystemClock())
    try:
        return spool.next_seq - 1
    finally:
        await spool.aclose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_in_files_mode_loads_every_file_once(standin_process: str, tmp_path: Path) -> None:
    """Six SIGKILLs, then a clean run: rows == distinct ids == acknowledged; files loaded once."""
    private, _ = generate_key_pair()
    write_private(tmp_path / "key.p8", private)
    config = tmp_path / "streamd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[target]\nkind = "snowflake"\nurl = "{standin_process}"\n'
        f'private_key = "file:{tmp_path / "key.p8"}"\n'
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
        "[reconciler]\nenabled = false\n"
        "[files]\nmax_file_rows = 200\nmax_file_age_s = 0.2\nreport_poll_s = 0.2\n"
        "scan_after_s = 1\nresubmit_after_s = 5\n"
        f'[files.stage]\ndirectory = "{tmp_path / "sf" / "stages"}"\n'
        f'[tables."{SENSOR}"]\nmode = "files"\n'
        '[[sources]]\nkind = "manufacturing"\nequipment_count = 4\nline_count = 1\n'
        "product_count = 1\nsensor_interval_ms = 5\nproduction_interval_ms = 50\n"
        "quality_interval_ms = 50\n"
    )
    rng = random.Random(20261123)
    command = [sys.executable, "-m", "streamd", "run", "--config", str(config)]
    logs = tmp_path / "daemon.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # log lines must survive the SIGKILL
    for _ in range(KILLS):
        with logs.open("ab") as log:
            daemon = subprocess.Popen(
                [*command, "--log-format", "json"], stdout=log, stderr=log, env=env
            )
            time.sleep(rng.uniform(2.5, 5.0))
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.wait(timeout=30)
    final = subprocess.run(
        [*command, "--duration", "4", "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    # Some kill left files cut but unconfirmed: a later run rebuilt and resubmitted them.
    recovered = (logs.read_text() + final.stdout).count('"files_recovering"')
    assert recovered > 0

    acknowledged = anyio.run(_acknowledged, tmp_path / "state" / "spool")
    assert acknowledged > 1000
    [[total, distinct]] = standin_query(
        standin_process, f"select count(*), count(distinct EVENT_ID) from {SENSOR}"
    )
    assert (int(total or 0), int(distinct or 0)) == (acknowledged, acknowledged)
    [[loads, paths]] = standin_query(
        standin_process,
        "select count(*), count(distinct PATH) from MANUFACTURING_DEMO._STANDIN.PIPE_LOAD_HISTORY "
        "where STATUS = 'LOADED'",
    )
    assert loads == paths
