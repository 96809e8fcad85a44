"""The CLI's answers to bad input: one line naming the thing and the fix, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from streamd.cli.inspect import fetch_status, render
from streamd.config.model import parse
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair, write_private
from tests.helpers import eventually


def streamd(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _assert_one_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_config_check_lists_every_problem_with_lines(tmp_path: Path) -> None:
    """`config check` prints PATH:LINE: key: message per problem and exits 2."""
    path = tmp_path / "bad.toml"
    path.write_text('[delivery]\nlinger_ms = -1\n\n[target]\nkindd = "x"\n')
    result = streamd("config", "check", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}:2: delivery.linger_ms: Input should be greater than or equal to 0",
        f"{path}:5: target.kindd: unknown key; remove it or check its spelling",
    ]


def test_config_check_accepts_the_example() -> None:
    """The documented example config is valid."""
    result = streamd("config", "check", "--config", "config/streamd.example.toml")
    assert result.returncode == 0, result.stderr


def _snowflake_config(tmp_path: Path, key_line: str, url: str = "http://127.0.0.1:9") -> Path:
    path = tmp_path / "streamd.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[target]\nkind = "snowflake"\nurl = "{url}"\n'
        f"{key_line}\n[delivery]\nstartup_timeout_s = 2\n[admin]\nport = 0\n"
        '[[sources]]\nkind = "manufacturing"\n'
    )
    return path


def test_unreadable_private_key_file(tmp_path: Path) -> None:
    """A missing key file is named with its config line and the fix."""
    path = _snowflake_config(tmp_path, f'private_key = "file:{tmp_path / "nope.p8"}"')
    _assert_one_line(streamd("run", "--config", str(path)), 2, "target.private_key", "nope.p8")


def test_garbage_private_key(tmp_path: Path) -> None:
    """A file that is not a PEM key gets the conversion command."""
    (tmp_path / "bad.p8").write_text("not a key\n")
    (tmp_path / "bad.p8").chmod(0o600)
    path = _snowflake_config(tmp_path, f'private_key = "file:{tmp_path / "bad.p8"}"')
    _assert_one_line(
        streamd("run", "--config", str(path)), 2, "target.private_key", "openssl pkcs8"
    )


def test_unreachable_target_gives_up_with_one_line(tmp_path: Path) -> None:
    """A target nobody answers at fails after startup_timeout_s, naming the URL and the setting."""
    private, _ = generate_key_pair()
    write_private(tmp_path / "k.p8", private)
    path = _snowflake_config(tmp_path, f'private_key = "file:{tmp_path / "k.p8"}"')
    _assert_one_line(
        streamd("run", "--config", str(path)), 1, "http://127.0.0.1:9", "startup_timeout_s"
    )


def test_unknown_table_is_named(tmp_path: Path) -> None:
    """A table the target does not have is reported as Snowflake would (pipe not found)."""
    path = tmp_path / "streamd.toml"
    path.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[admin]\nport = 0\n'
        '[[sources]]\nkind = "manufacturing"\nsensor_table = "NO_SUCH_TABLE"\n'
    )
    _assert_one_line(
        streamd("run", "--config", str(path), "--duration", "5"),
        1,
        "NO_SUCH_TABLE-STREAMING",
        "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
    )


def test_inspect_without_daemon_says_so(tmp_path: Path) -> None:
    """With nobody listening, inspect prints one line and exits 1."""
    path = tmp_path / "streamd.toml"
    path.write_text(f'state_dir = "{tmp_path}"\n[admin]\nport = 1\n')
    _assert_one_line(streamd("inspect", "--config", str(path)), 1, "no streamd daemon answers")


@pytest.mark.slow
async def test_inspect_shows_live_lanes_and_channels(tmp_path: Path) -> None:
    """While the daemon runs, /status reports lanes and channels, rendered within 80 columns."""
    config = parse(
        f'state_dir = "{tmp_path}"\n[target.standin]\ncommit_delay_ms = 100\n[admin]\nport = 0\n'
        "[delivery]\nlinger_ms = 20\nstatus_poll_ms = 50\n"
        '[[sources]]\nkind = "manufacturing"\nsensor_interval_ms = 5\n',
        path="t.toml",
    )
    daemon = Daemon(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(30):
            await daemon.ready.wait()
        # A few batches commit (commit delay 0.1 s, linger 0.02 s) and the tracker reports them.
        status = await eventually(
            lambda: anyio.to_thread.run_sync(fetch_status, config),
            lambda s: any(
                c["channel"] == "streamd_SENSOR_DATA_RAW" and c["rows_inserted"]
                for c in s["channels"]
            ),
            interval=0.1,
            what="the sensor channel reports committed rows",
        )
        daemon.stop()
    assert {lane["table"].split(".")[-1] for lane in status["lanes"]} == {
        "SENSOR_DATA_RAW",
        "PRODUCTION_DATA_RAW",
        "QUALITY_DATA_RAW",
    }
    assert set(status) >= {
        "version", "pid", "uptime_s", "stopping", "target", "sources", "lanes", "channels",
        "tables", "rejected", "reconciler",
    }  # fmt: skip
    sensor = next(c for c in status["channels"] if c["channel"] == "streamd_SENSOR_DATA_RAW")
    assert set(sensor) >= {
        "table", "channel", "pipe", "open", "committed_offset_token", "spool", "inflight_batches",
        "inflight_rows", "inflight_bytes", "commit_lag_s", "rows_inserted", "rows_error_count",
        "last_error_message", "status_code",
    }  # fmt: skip
    assert set(status["lanes"][0]) >= {
        "table", "lane", "depth", "capacity", "producers_waiting", "spool"
    }  # fmt: skip
    assert sensor["open"] is True
    assert sensor["committed_offset_token"] is not None
    assert sensor["rows_inserted"] > 0
    text = render(status)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "streamd_SENSOR_DATA_RAW" in text
