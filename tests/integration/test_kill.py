"""SIGKILL the daemon at random moments: afterwards every acknowledged row is in Snowflake, once.

The daemon runs as a subprocess against a stand-in in another process. "Acknowledged" means made
durable in the spool (what a push source is told); the spool's sequence numbers never repeat, so the
rows it ever acknowledged per lane are its next sequence minus one.
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
from streamd.testing import standin_query
from tests import helpers

TABLES = ("SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW")
KILLS = 20


@pytest.fixture
def standin_process(tmp_path: Path) -> Iterator[str]:
    """`streamd standin serve` in its own process; yields its URL."""
    with helpers.standin_process(tmp_path / "sf", "--commit-delay-ms", "300") as url:
        yield url


def _count(url: str, table: str) -> tuple[int, int]:
    [[total, distinct]] = standin_query(
        url,
        f"select count(*), count(distinct EVENT_ID) from MANUFACTURING_DEMO.RAW_DATA.{table}",
    )
    return int(total or 0), int(distinct or 0)


async def _acknowledged(spool_dir: Path, table: str) -> int:
    spool = await LaneSpool.open(
        spool_dir / f"MANUFACTURING_DEMO.RAW_DATA.{table}",
        SpoolConfig(fsync="never"),
        SystemClock(),
    )
    try:
        return spool.next_seq - 1
    finally:
        await spool.aclose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sigkill_twenty_times_loses_and_duplicates_nothing(
    standin_process: str, tmp_path: Path
) -> None:
    """20 SIGKILLs at random moments, one clean run: table rows == distinct ids == acknowledged."""
    private, _ = generate_key_pair()
    write_private(tmp_path / "key.p8", private)
    config = tmp_path / "streamd.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f'[target]\nkind = "snowflake"\nurl = "{standin_process}"\nprivate_key = "file:{tmp_path / "key.p8"}"\n'
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
        '[[sources]]\nkind = "manufacturing"\nequipment_count = 4\nline_count = 2\nproduct_count = 2\n'
        "sensor_interval_ms = 5\nproduction_interval_ms = 5\nquality_interval_ms = 5\n"
    )
    rng = random.Random(20261123)
    command = [
        sys.executable,
        "-m",
        "streamd",
        "run",
        "--config",
        str(config),
        "--log-format",
        "json",
    ]
    for _ in range(KILLS):
        daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
    final = subprocess.run(
        [*command, "--duration", "3"], capture_output=True, text=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr

    for table in TABLES:
        acknowledged = anyio.run(_acknowledged, tmp_path / "state" / "spool", table)
        assert acknowledged > 0
        assert _count(standin_process, table) == (acknowledged, acknowledged), table
