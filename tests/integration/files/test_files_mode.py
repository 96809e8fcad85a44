"""Files mode end to end: the real daemon, the embedded stand-in, classic Snowpipe over HTTP."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson

from streamd.cli.inspect import render
from streamd.config.model import parse
from streamd.daemon.run import Daemon
from streamd.sources.base import SourceContext
from streamd.standin.storage.database import query_offline
from streamd.testing import ListSource, sensor_rows

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
PRODUCTION = "MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW"


def config_text(state_dir: Path, extra: str = "", max_file_rows: int = 150) -> str:
    """A local-target config with SENSOR_DATA_RAW in files mode and quick confirmation."""
    return f"""
state_dir = "{state_dir}"
[target.standin]
commit_delay_ms = 100
[delivery]
linger_ms = 50
status_poll_ms = 50
drain_timeout_s = 30
[admin]
port = 0
[files]
max_file_rows = {max_file_rows}
max_file_age_s = 0.3
report_poll_s = 0.2
scan_after_s = 2
resubmit_after_s = 10
[tables."{SENSOR}"]
mode = "files"
{extra}
"""


def _query(state_dir: Path, sql: str) -> list[tuple[object, ...]]:
    return query_offline(state_dir / "standin", sql)[1]


def _loaded_files(state_dir: Path) -> tuple[int, int]:
    [(total, distinct)] = _query(
        state_dir,
        "select count(*), count(distinct PATH) from MANUFACTURING_DEMO._STANDIN.PIPE_LOAD_HISTORY "
        "where STATUS = 'LOADED'",
    )
    return int(total), int(distinct)  # type: ignore[call-overload]


async def test_files_mode_table_receives_exactly_the_rows_produced(tmp_path: Path) -> None:
    """Manufacturing sources, sensor rows as files, the rest streamed: all land once."""
    state = tmp_path / "state"
    text = config_text(state) + (
        '[[sources]]\nkind = "manufacturing"\nequipment_count = 5\nline_count = 2\n'
        "product_count = 2\nsensor_interval_ms = 5\nproduction_interval_ms = 20\n"
        "quality_interval_ms = 20\n"
    )
    daemon = Daemon(parse(text, path="test.toml"))
    summary = await daemon.run(duration=3)

    assert summary.uncommitted == 0
    # inspect shows the files-mode lane as a channel row of its pipe.
    status = daemon.status()
    [files_row] = [c for c in status["channels"] if c.get("mode") == "files"]
    assert files_row["inflight_files"] == 0
    assert files_row["files_loaded"] > 1
    assert "files:SENSOR_DATA_RAW" in render(status, width=120)
    sensor = summary.tables[SENSOR]
    assert sensor.produced > 300
    assert sensor.committed == sensor.produced
    [(total, distinct)] = _query(state, f"select count(*), count(distinct EVENT_ID) from {SENSOR}")
    assert (total, distinct) == (sensor.produced, sensor.produced)
    files, distinct_files = _loaded_files(state)
    assert files > 1
    assert files == distinct_files
    # The streaming tables are untouched by files mode.
    production = summary.tables[PRODUCTION]
    assert production.committed == production.produced > 0
    # The stage holds the files under deterministic, range-named paths.
    staged = sorted((state / "standin" / "stages").rglob("*.ndjson.gz"))
    assert len(staged) == files
    assert staged[0].name == "000000000001-" + staged[0].name.split("-")[1]


async def test_a_file_the_table_refuses_is_dead_lettered_row_by_row(tmp_path: Path) -> None:
    """A LOAD_FAILED file (a value of the wrong type) ends up in the dead-letter file, whole,
    with Snowpipe's first error; the good files load; nothing is committed twice or lost."""
    state = tmp_path / "state"
    good = sensor_rows(40)
    bad = [dict(r, TEMPERATURE="hot") for r in sensor_rows(3)]
    for i, row in enumerate(bad):
        row["EVENT_ID"] = f"bad:{i}"
    text = config_text(state, extra="[files.stage]\nname = 'LANDING'\n", max_file_rows=10)
    config = parse(text, path="t.toml")
    # One source emits good rows, then a burst of bad ones, then good ones again.
    rows = good[:20] + bad + good[20:]
    daemon = Daemon(config, sources=[ListSource("list", SENSOR, rows)], tables=[SENSOR])
    summary = await daemon.run(duration=60)

    counts = summary.tables[SENSOR]
    assert counts.produced == len(rows)
    assert counts.uncommitted == 0
    [(total,)] = _query(state, f"select count(*) from {SENSOR}")
    dead = [
        orjson.loads(line)
        for line in (state / "dead_letters" / f"{SENSOR}.ndjson").read_bytes().splitlines()
    ]
    # Files of 10 rows: the third (rows 21-30) holds the bad rows and fails as a whole.
    assert len(dead) == 10
    assert {d["row"]["EVENT_ID"] for d in dead} >= {r["EVENT_ID"] for r in bad}
    assert all(d["rule"] == "file_load_failed" for d in dead)
    assert "TEMPERATURE" in dead[0]["detail"]
    # Every row is either in the table or in the dead-letter file, never both, never neither.
    assert int(total) + len(dead) == len(rows)  # type: ignore[call-overload]
    assert counts.committed == total
    assert counts.rejected == len(dead)


class HoldingSource(ListSource):
    """Sends its rows, then stays open (so the daemon keeps running until stopped)."""

    async def run(self, ctx: SourceContext) -> None:
        await super().run(ctx)
        await anyio.sleep_forever()


async def test_a_failed_file_becomes_a_reconciler_finding(tmp_path: Path) -> None:
    """The reconciler watching the files-mode pipe reports the failed load (COPY_HISTORY) with
    its file and Snowpipe's first error."""
    state = tmp_path / "state"
    pipe = f"{SENSOR}_STREAMD_FILES"
    extra = (
        "[reconciler]\ninterval_s = 1\ndatabases = []\n"
        f'pipes = [{{ pipe = "{pipe}", table = "{SENSOR}" }}]\n'
    )
    rows = [dict(r, TEMPERATURE="hot") for r in sensor_rows(5)]
    config = parse(config_text(state) + extra, path="t.toml")
    daemon = Daemon(config, sources=[HoldingSource("list", SENSOR, rows)], tables=[SENSOR])
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            await daemon.ready.wait()
            assert daemon.reconciler is not None
            while True:
                report = await daemon.reconciler.next_report()
                found = [f for f in report.findings if f.check == "pipe_loads"]
                if found:
                    break
        daemon.stop()
    assert found[0].object == pipe
    assert "failed" in found[0].message
    assert "TEMPERATURE" in found[0].message
