"""Shared by the process benches: a daemon subprocess from a generated TOML config, /proc sampling.

Imported by `bench/scale.py` and `bench/stall.py` (run as scripts, so `bench/` is on sys.path).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from streamd.snowflake.keys import generate_key_pair

SENSOR_TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
MAX_EQUIPMENT = 9999
"""`equipment_count` allows at most this many machines per manufacturing source."""
_TICKS = os.sysconf("SC_CLK_TCK")


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so `finally` blocks stop the daemon and remove temp dirs."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    raise TypeError(f"no TOML form for {value!r}")


def to_toml(config: dict[str, Any]) -> str:
    """TOML for a config of scalars, tables of scalars and arrays of tables (what streamd uses)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict | list)]

    def table(prefix: str, body: dict[str, Any], header: str) -> None:
        lines.append(f"\n{header}")
        nested = []
        for key, value in body.items():
            if isinstance(value, dict):
                nested.append((key, value))
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        for key, value in nested:
            table(f"{prefix}.{key}", value, f"[{prefix}.{key}]")

    for key, value in config.items():
        if isinstance(value, dict):
            table(key, value, f"[{key}]")
        elif isinstance(value, list):
            for item in value:
                table(key, item, f"[[{key}]]")
    return "\n".join(lines) + "\n"


def manufacturing_sources(equipment: int, interval_ms: float) -> list[dict[str, Any]]:
    """Sensor-only manufacturing sources with `equipment` machines in all (one task each).

    One source allows at most 9,999 machines, so larger counts are split over several sources
    with their own `id_prefix` (so their EVENT_IDs differ); all write the one sensor table.
    """
    sources = []
    for k, first in enumerate(range(0, equipment, MAX_EQUIPMENT)):
        sources.append(
            {
                "kind": "manufacturing",
                "name": f"plant{k}",
                "id_prefix": f"p{k}-",
                "equipment_count": min(MAX_EQUIPMENT, equipment - first),
                "line_count": 0,
                "product_count": 0,
                "sensor_interval_ms": interval_ms,
            }
        )
    return sources


def write_key(directory: Path) -> Path:
    """A fresh unencrypted PKCS#8 key, mode 0600 (the stand-in checks no JWT signature)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench_key.p8"
    private_pem, _ = generate_key_pair()
    path.write_bytes(private_pem)
    path.chmod(0o600)
    return path


def daemon_config(
    state_dir: Path, url: str, key: Path, sources: list[dict[str, Any]], **delivery: object
) -> dict[str, Any]:
    """A daemon config for the stand-in at `url`: admin on port 0, reconciler off, warnings only."""
    return {
        "state_dir": str(state_dir),
        "target": {"kind": "snowflake", "url": url, "private_key": f"file:{key}"},
        "delivery": {"drain_timeout_s": 600, **delivery},
        "admin": {"enabled": True, "port": 0},
        "log": {"level": "warning", "format": "json"},
        "reconciler": {"enabled": False},
        "sources": sources,
    }


def start_daemon(
    config: dict[str, Any], directory: Path, timeout_s: float = 300
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m streamd run` on a generated config; returns it and its admin URL once serving."""
    path = directory / "streamd.toml"
    path.write_text(to_toml(config))
    state_dir = Path(config["state_dir"])
    with (directory / "daemon.log").open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamd", "run", "--config", str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    admin = state_dir / "admin.url"
    try:
        _wait_for_file(proc, admin, directory / "daemon.log", timeout_s)
    except BaseException:
        # Interrupted or failed while starting: the caller never gets the process to stop.
        proc.kill()
        proc.wait()
        raise
    return proc, admin.read_text().strip()


def _wait_for_file(proc: subprocess.Popen[bytes], path: Path, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"daemon wrote no {path} within {timeout_s} s")
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One look at a process: monotonic time, resident set and CPU seconds used so far."""

    at: float
    rss_mb: float
    cpu_s: float


def sample(pid: int) -> ProcSample:
    """RSS from /proc/<pid>/status (VmRSS) and utime + stime from /proc/<pid>/stat."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the ")" that closes the command name: utime and stime are the 12th and 13th.
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICKS
    return ProcSample(time.monotonic(), rss_kb / 1024, cpu)


def cpu_percent(a: ProcSample, b: ProcSample) -> float:
    """CPU use between two samples, in % of one core."""
    return 100 * (b.cpu_s - a.cpu_s) / max(1e-9, b.at - a.at)


def table_counts(status: dict[str, Any], table: str = SENSOR_TABLE) -> tuple[int, int]:
    """(produced, committed) of `table` from the daemon's /status."""
    counts = status["tables"].get(table, {})
    return int(counts.get("produced", 0)), int(counts.get("committed", 0))


def spool_bytes(status: dict[str, Any]) -> int:
    """Bytes on disk of every lane's spool, from /status."""
    return sum(int(lane["spool"]["bytes"]) for lane in status["lanes"] if lane.get("spool"))


def stop_daemon(proc: subprocess.Popen[bytes], timeout_s: float = 600) -> float:
    """SIGTERM (drain) and wait; the seconds the drain and exit took."""
    t0 = time.monotonic()
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - t0
