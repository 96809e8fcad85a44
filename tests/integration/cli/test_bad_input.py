"""Every command, fed bad input, ends in one line and a non-zero exit: never a traceback.

Bad files, bad SQL, no daemon, no state, bad flags and unusable paths; `--debug` is the only way
to a traceback.
"""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def streamd(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamd", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "ok.toml").write_text(f'state_dir = "{tmp_path / "state"}"\n[admin]\nport = 0\n')
    (tmp_path / "syntax.toml").write_text("[delivery\n")
    (tmp_path / "dir.toml").mkdir()
    torn = gzip.compress(b'{"EVENT_ID": "a"}\n') + b"garbage after the member"
    (tmp_path / "torn.ndjson.gz").write_bytes(torn)
    (tmp_path / "array.json").write_text("[1, 2")
    return tmp_path


CASES = {
    "run: no such config": ("run", "--config", "missing.toml"),
    "run: TOML syntax": ("run", "--config", "syntax.toml"),
    "run: bad flag value": ("run", "--duration", "soon"),
    "run: unknown log level": ("run", "--config", "ok.toml", "--log-level", "LOUD"),
    "run: unknown log format": ("run", "--config", "ok.toml", "--log-format", "xml"),
    "config check: a directory": ("config", "check", "--config", "dir.toml"),
    "inspect: no daemon": ("inspect", "--config", "ok.toml"),
    "sql: unknown table, no daemon": ("sql", "--config", "ok.toml", "select * from NOPE"),
    "sql: syntax error, no daemon": ("sql", "--config", "ok.toml", "selec 1"),
    "setup: unknown domain": ("setup", "--config", "ok.toml", "--domain", "nope"),
    "backfill: torn gzip": ("backfill", "--config", "ok.toml", "--table", SENSOR, "torn.ndjson.gz"),
    "backfill: broken JSON array": (
        "backfill",
        "--config",
        "ok.toml",
        "--table",
        SENSOR,
        "array.json",
    ),
    "backfill: no such file": ("backfill", "--config", "ok.toml", "--table", SENSOR, "none.ndjson"),
    "backfill: unqualified table": (
        "backfill",
        "--config",
        "ok.toml",
        "--table",
        "T",
        "array.json",
    ),
    "keygen: unusable directory": ("keygen", "--out", "/proc/streamd-nope"),
    "standin serve: bad fault spec": ("standin", "serve", "--faults", "garbage"),
    "standin serve: half a TLS pair": ("standin", "serve", "--tls-cert", "cert.pem"),
    "unknown command": ("frobnicate",),
}


@pytest.mark.parametrize("args", CASES.values(), ids=CASES.keys())
def test_bad_input_ends_in_one_line_without_a_traceback(work: Path, args: tuple[str, ...]) -> None:
    done = streamd(work, *args)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    # Log lines may come first (a command that started work); the verdict is the last line, said
    # by streamd (or by the flag parser), not a Python exception's repr.
    last = done.stderr.strip().splitlines()[-1]
    assert not re.match(r"^[\w.]*(Error|Exception|Group)\b", last), done.stderr
    assert len(last) > 20, done.stderr


def test_backfill_names_the_torn_file_and_the_fix(work: Path) -> None:
    done = streamd(work, "backfill", "--config", "ok.toml", "--table", SENSOR, "torn.ndjson.gz")
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("streamd: torn.ndjson.gz: the gzip data is damaged")
    assert "run backfill again" in last


def test_sql_without_a_daemon_answers_as_the_sql_api_does(work: Path) -> None:
    """Offline `streamd sql` goes through the stand-in's SQL engine: values come back as strings."""
    done = streamd(
        work, "sql", "--config", "ok.toml", "--json", f"select count(*) as n from {SENSOR}"
    )
    assert done.returncode == 0, done.stderr
    [row] = orjson.loads(done.stdout)
    assert list(row.values()) == ["0"]


def test_an_unexpected_error_is_one_line_and_debug_shows_its_traceback(work: Path) -> None:
    # An ndjson source whose state_dir is a file: nothing checks that before the run starts.
    (work / "state").write_text("not a directory")
    plain = streamd(work, "run", "--config", "ok.toml", "--duration", "1")
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines()[-1].startswith("streamd: ")
    debug = streamd(work, "--debug", "run", "--config", "ok.toml", "--duration", "1")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
