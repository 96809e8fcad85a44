"""Event ids never repeat, even when the state directory is lost between two runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from streamd.snowflake.keys import generate_key_pair, write_private
from streamd.testing import standin_query
from tests import helpers

TABLES = ("SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW")


def test_a_lost_state_dir_repeats_no_event_id(tmp_path: Path) -> None:
    private, _ = generate_key_pair()
    write_private(tmp_path / "key.p8", private)
    state = tmp_path / "state"
    config = tmp_path / "streamd.toml"
    with helpers.standin_process(tmp_path / "sf", "--commit-delay-ms", "100") as url:
        config.write_text(
            f'state_dir = "{state}"\n'
            f'[target]\nkind = "snowflake"\nurl = "{url}"\nprivate_key = "file:{tmp_path / "key.p8"}"\n'
            "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n[admin]\nport = 0\n"
            '[[sources]]\nkind = "manufacturing"\nequipment_count = 3\nline_count = 1\n'
            "product_count = 1\nsensor_interval_ms = 20\nproduction_interval_ms = 20\n"
            "quality_interval_ms = 20\n"
        )
        run = [sys.executable, "-m", "streamd", "run", "--config", str(config), "--duration", "3"]
        for _ in range(2):
            done = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False)
            assert done.returncode == 0, done.stderr[-2000:]
            shutil.rmtree(state)  # a new disk: spool, sequences and positions are gone
        for table in TABLES:
            [[total, distinct]] = standin_query(
                url,
                f"select count(*), count(distinct EVENT_ID) from MANUFACTURING_DEMO.RAW_DATA.{table}",
            )
            assert int(total) > 0, table
            assert int(total) == int(distinct), f"{table}: {total} rows, {distinct} distinct ids"
