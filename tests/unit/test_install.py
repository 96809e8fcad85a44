"""What works when packages are missing: the streaming-only install, or a broken MQTT client.

Each case runs the CLI in a fresh interpreter whose import system refuses the named packages, as
an install without them would.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streamd.install import FULL_ONLY

# Runs the CLI with `sys.argv[2:]`, refusing to import the comma-separated packages in argv[1].
_BLOCKED_CLI = """
import sys

blocked = set(sys.argv[1].split(","))


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
sys.argv = ["streamd", *sys.argv[2:]]
from streamd.cli.app import main

main()
"""

_MQTT_CONFIG = """
state_dir = "{state}"

[target]
kind = "local"

[[sources]]
kind = "mqtt"
name = "plant"
host = "127.0.0.1"
port = 1883
client_id = "streamd-plant"

[[sources.subscriptions]]
topic = "plant/+/telemetry"
table = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
"""


def _cli(blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED_CLI, ",".join(sorted(blocked)), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def mqtt_config(tmp_path: Path) -> Path:
    path = tmp_path / "streamd.toml"
    path.write_text(_MQTT_CONFIG.format(state=tmp_path / "state"))
    return path


def test_help_and_config_check_work_without_the_mqtt_client(mqtt_config: Path) -> None:
    broken = {"aiomqtt", "paho", "google"}
    assert _cli(broken, "--help").returncode == 0
    checked = _cli(broken, "config", "check", "--config", str(mqtt_config))
    assert checked.returncode == 0, checked.stderr


def test_streaming_only_install_loads_config_and_help(mqtt_config: Path) -> None:
    assert _cli(set(FULL_ONLY), "--help").returncode == 0
    checked = _cli(set(FULL_ONLY), "config", "check", "--config", str(mqtt_config))
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize(
    ("args", "feature"),
    [
        (("standin", "serve", "--port", "0"), "streamd standin serve"),
        (("sql", "select 1"), "the local target (the embedded stand-in)"),
    ],
)
def test_streaming_only_install_refuses_stand_in_work_in_one_line(
    mqtt_config: Path, args: tuple[str, ...], feature: str
) -> None:
    extra = ("--config", str(mqtt_config)) if args[0] == "sql" else ()
    done = _cli(set(FULL_ONLY), *args, *extra)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"streamd: {feature} needs ")
    assert "pip install streamd" in lines[0]
