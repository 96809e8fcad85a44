"""Deployment artefacts: the systemd unit (verify, security exposure), its samples, the Containerfile.

`systemd-analyze` ships with the `systemd` package (Debian: `apt-get install -y systemd`; it does
not need systemd running as PID 1). Without it the systemd-analyze tests skip; the rest still run.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamd.cli.keygen import generate
from streamd.config.model import Config, parse

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "streamd.service"
TOML_EXAMPLE = REPO / "systemd" / "streamd.toml.example"
ENV_EXAMPLE = REPO / "systemd" / "streamd.env.example"
CONTAINERFILE = REPO / "Containerfile"
INSTALLED_BINARY = "/opt/streamd/bin/streamd"
CREDENTIAL_PATH = "/run/credentials/streamd.service/rsa_key.p8"
MAX_EXPOSURE = 2.0

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed (apt-get install -y systemd)"
)


def _unit_settings(text: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit (or env file), every value of repeated keys, comments skipped."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture
def testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at a binary that exists here (verify checks it)."""
    binary = shutil.which("streamd") or str(Path(sys.executable).with_name("streamd"))
    if not Path(binary).exists():
        binary = sys.executable
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    path = tmp_path / "streamd.service"  # the unit name matters: the credential path uses it
    path.write_text(text.replace(INSTALLED_BINARY, binary))
    return path


@needs_systemd_analyze
def test_unit_verifies_cleanly(testable_unit: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a single warning about it."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(testable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    # verify exits 0 even on unknown keys and unparsable values; its complaints name the file.
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if testable_unit.name in line
    ]
    assert result.returncode == 0, result.stderr
    assert complaints == []


@needs_systemd_analyze
def test_security_exposure_is_low(testable_unit: Path) -> None:
    """`systemd-analyze security --offline` rates the unit at most 2.0 (OK)."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(testable_unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("systemd-analyze older than 250 has no --offline")
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


def test_unit_contract() -> None:
    """What the daemon and the docs rely on, checked even without systemd-analyze."""
    s = _unit_settings(UNIT.read_text())
    assert s["Type"] == ["notify"]
    assert s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] == ["60"]
    assert s["Restart"] == ["on-failure"]
    assert s["KillSignal"] == ["SIGTERM"]
    assert s["StateDirectory"] == ["streamd"]
    assert s["WorkingDirectory"] == ["/var/lib/streamd"]
    assert s["LoadCredential"] == ["rsa_key.p8:/etc/streamd/rsa_key.p8"]
    assert s["CapabilityBoundingSet"] == [""]
    assert s["ProtectSystem"] == ["strict"]
    assert s["SystemCallFilter"][0] == "@system-service"
    for flag in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert s[flag] == ["yes"], flag
    # The daemon must reach Snowflake: no egress deny list, no private network.
    assert "IPAddressDeny" not in s
    assert "PrivateNetwork" not in s
    assert set(s["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    exec_start = shlex.split(s["ExecStart"][0])
    assert exec_start[:4] == [INSTALLED_BINARY, "run", "--config", "/etc/streamd/streamd.toml"]


def _sample_config(tmp_path: Path) -> Config:
    """The sample TOML, parsed with a freshly generated key in place of the credential path."""
    text = TOML_EXAMPLE.read_text()
    assert f'private_key = "file:{CREDENTIAL_PATH}"' in text
    key = generate(tmp_path / "keys").private_path
    return parse(text.replace(CREDENTIAL_PATH, str(key)), path=str(TOML_EXAMPLE))


def test_sample_toml_is_valid(tmp_path: Path) -> None:
    """The sample /etc/streamd/streamd.toml validates, with the key at its credential path."""
    cfg = _sample_config(tmp_path)
    assert cfg.target.kind == "snowflake"
    assert cfg.state_dir == Path("/var/lib/streamd")
    assert cfg.admin.port == 8765
    assert cfg.target.private_key is not None
    assert "PRIVATE KEY" in cfg.target.private_key.get_secret_value()


def test_unit_timeouts_cover_drain_and_startup(tmp_path: Path) -> None:
    """The sample config's drain and start-up budgets fit inside the unit's timeouts."""
    s = _unit_settings(UNIT.read_text())
    cfg = _sample_config(tmp_path)
    assert cfg.delivery.drain_timeout_s < float(s["TimeoutStopSec"][0])
    assert cfg.delivery.startup_timeout_s < float(s["TimeoutStartSec"][0])


def test_env_example_is_only_comments_or_assignments() -> None:
    """EnvironmentFile syntax: every active line is NAME=value (all shipped lines are comments)."""
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Z_][A-Z0-9_]*=", line), line


def _containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in CONTAINERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "dangling line continuation"
    return [(ins.upper(), rest.strip()) for ins, _, rest in (j.partition(" ") for j in joined)]


def test_containerfile_shape() -> None:
    """Builders, then a non-root runtime stage (state volume, HEALTHCHECK on /healthz, streamd
    entrypoint) that the `streaming` and `full` (last, the default) targets add a venv to."""
    instructions = _containerfile()
    froms = [i for i, (ins, _) in enumerate(instructions) if ins == "FROM"]
    names = [instructions[i][1].rsplit(" AS ", 1)[-1] for i in froms]
    assert names[-3:] == ["runtime", "streaming", "full"]
    bounds = zip(froms, [*froms[1:], None], strict=True)
    stage = dict(zip(names, [instructions[a:b] for a, b in bounds], strict=True))
    by_kind: dict[str, list[str]] = {}
    for ins, args in stage["runtime"]:
        by_kind.setdefault(ins, []).append(args)

    user = by_kind["USER"][-1].split(":")[0]
    assert user == "10001"
    assert any("--uid 10001" in run for run in by_kind["RUN"])
    assert by_kind["VOLUME"] == ['["/var/lib/streamd"]']
    assert by_kind["WORKDIR"] == ["/var/lib/streamd"]
    assert by_kind["EXPOSE"] == ["8765"]
    (health,) = by_kind["HEALTHCHECK"]
    assert "http://127.0.0.1:8765/healthz" in health
    assert by_kind["ENTRYPOINT"] == ['["streamd"]']
    assert by_kind["CMD"] == ['["run", "--config", "/etc/streamd/streamd.toml"]']
    assert "COPY" not in by_kind
    # Each target adds only its builder's venv: no compiler, no source tree, no pip.
    for target, lock in (("streaming", "streaming.txt"), ("full", "main.txt")):
        copies = [args for ins, args in stage[target] if ins in ("COPY", "ADD")]
        assert copies == [f"--from=venv-{target} /opt/streamd /opt/streamd"]
        venv = " ".join(args for ins, args in stage[f"venv-{target}"])
        assert f"requirements/{lock}" in venv
        assert "--require-hashes" in venv
        assert "--no-deps /wheels/streamd-" in venv
        assert "uninstall -q -y pip" in venv
    assert any(ins == "RUN" and "pip wheel --no-deps" in args for ins, args in stage["wheel"])
