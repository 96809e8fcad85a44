"""`streamd backfill`: existing NDJSON / JSON-array files through files mode, idempotent re-runs."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streamd.config.model import parse
from streamd.sinks.files.backfill import backfill, chunks
from streamd.standin.storage.database import query_offline
from streamd.testing import sensor_rows

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def _inputs(tmp_path: Path) -> list[Path]:
    rows = sensor_rows(2500)
    ndjson = tmp_path / "history.ndjson.gz"
    ndjson.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows[:2000])))
    array = tmp_path / "extra.json"
    array.write_bytes(orjson.dumps(rows[2000:]))
    return [ndjson, array]


def _config(tmp_path: Path) -> str:
    return (
        f'state_dir = "{tmp_path / "state"}"\n[admin]\nenabled = false\n'
        "[files]\nmax_file_rows = 400\nreport_poll_s = 0.2\n"
    )


def _counts(tmp_path: Path) -> tuple[int, int]:
    [(total, distinct)] = query_offline(
        tmp_path / "state" / "standin", f"select count(*), count(distinct EVENT_ID) from {SENSOR}"
    )[1]
    return int(total), int(distinct)  # type: ignore[call-overload]


def test_chunks_split_ndjson_and_arrays_by_rows(tmp_path: Path) -> None:
    ndjson, array = _inputs(tmp_path)
    pieces = list(chunks(ndjson, 400, 1 << 30))
    assert [rows for _, rows in pieces] == [400] * 5
    assert pieces[0][0].count(b"\n") == 400
    assert [rows for _, rows in chunks(array, 400, 1 << 30)] == [400, 100]


async def test_backfill_loads_every_row_once_and_reruns_change_nothing(tmp_path: Path) -> None:
    """Two inputs (NDJSON.gz, JSON array) → 7 files, 2,500 rows; a second run skips them all."""
    paths = _inputs(tmp_path)
    config = parse(_config(tmp_path), path="t.toml")
    lines: list[str] = []
    first = await backfill(config, SENSOR, paths, lines.append)
    assert (first.files, first.rows_sent, first.rows_loaded, first.failed) == (7, 2500, 2500, [])
    assert any("rows/s" in line for line in lines)
    assert _counts(tmp_path) == (2500, 2500)

    again = await backfill(config, SENSOR, paths, lines.append)
    assert (again.files, again.failed) == (7, [])
    assert _counts(tmp_path) == (2500, 2500)


@pytest.mark.slow
def test_cli_backfill_reports_bad_lines_per_file(tmp_path: Path) -> None:
    """A file with an invalid line fails as a whole, is named with its line, and exits 1."""
    good, _ = _inputs(tmp_path)
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(orjson.dumps(sensor_rows(1)[0]) + b"\n{not json}\n")
    (tmp_path / "c.toml").write_text(_config(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "streamd", "backfill", "--config", str(tmp_path / "c.toml"),
         "--table", SENSOR, str(good), str(bad)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "FAILED backfill/SENSOR_DATA_RAW/bad-" in result.stdout
    assert "line 2" in result.stdout
    assert "2000 of 2002 rows loaded" in result.stdout
    assert _counts(tmp_path) == (2000, 2000)
