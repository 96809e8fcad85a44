"""`streamd inspect`: fetch the running daemon's /status and render it for a terminal."""

from __future__ import annotations

import shutil
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer

from streamd.cli.common import ConfigOpt, load_config, one_line_errors
from streamd.config.model import Config
from streamd.errors import StreamdError


class DaemonNotRunning(StreamdError):
    """No daemon answers on the admin endpoint."""


def admin_url(config: Config) -> str:
    """The admin URL from config, or the one a daemon with `admin.port = 0` wrote down."""
    if config.admin.port == 0:
        written = Path(config.state_dir) / "admin.url"
        if written.exists():
            return written.read_text().strip()
    return f"http://{config.admin.host}:{config.admin.port}"


def fetch_status(config: Config, *, timeout: float = 3.0) -> dict[str, Any]:
    """The daemon's /status JSON; DaemonNotRunning with one line when nobody answers."""
    url = admin_url(config)
    if url.endswith(":0"):
        written = Path(config.state_dir) / "admin.url"
        raise DaemonNotRunning(
            f"no streamd daemon is running with state_dir {config.state_dir} (with admin.port = 0 "
            f"it writes {written} when it starts); start one with `streamd run`"
        )
    try:
        response = httpx.get(f"{url}/status", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError:
        raise DaemonNotRunning(
            f"no streamd daemon answers at {url}; start one with `streamd run` (or check admin.port)"
        ) from None
    data: dict[str, Any] = orjson.loads(response.content)
    return data


def render(status: dict[str, Any], width: int = 80) -> str:
    """A one-screen text view: target, sources, lanes, channels, tables and reconciler findings."""
    out: list[str] = []
    target = status.get("target", {})
    out.append(
        f"streamd {status.get('version')}  pid {status.get('pid')}  up {status.get('uptime_s')}s  "
        f"target {target.get('kind')} {target.get('url')}"
    )
    out.append("")
    out.append("SOURCES")
    for source in status.get("sources", []):
        out.append(f"  {source['name']:<24} {source['kind']}")
    out.append("")
    out.append(
        f"{'LANE':<30} {'DEPTH':>6} {'CAP':>6} {'SPOOL MB':>8} {'COMMITTED':>10} {'WAITING':>8}"
    )
    for lane in status.get("lanes", []):
        spool = lane.get("spool") or {}
        out.append(
            f"{_short(lane.get('lane', lane['table']), 30):<30} {lane['depth']:>6} "
            f"{lane['capacity']:>6} {spool.get('bytes', 0) / 1e6:>8.1f} "
            f"{spool.get('committed', 0):>10} {spool.get('rows_waiting', 0):>8}"
        )
        if spool.get("writer_blocked"):
            out.append("  spool full: sources are waiting for commits (spool.max_bytes)")
    out.append("")
    out.append(
        f"{'CHANNEL':<30} {'COMMITTED':>12} {'INFLIGHT':>9} {'INSERTED':>10} {'ERR':>5} {'LAG s':>6}"
    )
    for ch in status.get("channels", []):
        committed = ch.get("committed_offset_token")
        out.append(
            f"{_short(ch['channel'], 30):<30} {_offset(committed):>12} {ch['inflight_rows']:>9} "
            f"{ch['rows_inserted']:>10} {ch['rows_error_count']:>5} {ch['commit_lag_s']:>6}"
        )
        if ch.get("last_error_message"):
            out.append(f"  last error: {_short(ch['last_error_message'], width - 14)}")
    out.append("")
    out.append(f"{'TABLE':<44} {'PRODUCED':>11} {'COMMITTED':>11} {'REJECTED':>9}")
    for table, counts in status.get("tables", {}).items():
        out.append(
            f"{_short(table, 44):<44} {counts['produced']:>11} {counts['committed']:>11} "
            f"{counts['rejected']:>9}"
        )
    rejected = status.get("rejected", [])
    if rejected:
        out.append("")
        out.append(f"{'DEAD LETTERS (table, rule)':<66} {'ROWS':>11}")
        for entry in rejected:
            label = f"{entry['table'].split('.')[-1]} {entry['rule']}"
            out.append(f"{_short(label, 66):<66} {entry['rows']:>11}")
    out += _findings(status.get("reconciler") or {}, width)
    return "\n".join(line[:width] for line in out)


_SEVERITY_TAGS = {"critical": "CRIT", "warning": "WARN", "info": "INFO"}


def _findings(reconciler: dict[str, Any], width: int) -> list[str]:
    """The reconciler's findings (what, why, what to do) and end-to-end freshness per source."""
    out = ["", "FINDINGS"]
    if not reconciler.get("enabled"):
        out[-1] += "  reconciler disabled (reconciler.enabled)"
        return out
    started = reconciler.get("cycle_started")
    if started is None:
        out[-1] += "  waiting for the first reconciler cycle"
        return out
    counts = reconciler.get("counts", {})
    out[-1] += (
        f"  {counts.get('critical', 0)} critical, {counts.get('warning', 0)} warning"
        f"  (cycle {reconciler.get('cycles')} at {_clock(started)}, {reconciler.get('cycle_s')} s)"
    )
    for f in reconciler.get("findings", []):
        since = f" since {_clock(f['first_seen'])}" if f.get("first_seen") else ""
        head = f"{_SEVERITY_TAGS.get(f['severity'], f['severity'])} {f['check']} "
        out.append(head + _short(f["object"], width - len(head) - len(since)) + since)
        out += textwrap.wrap(f["message"], width, initial_indent="  ", subsequent_indent="  ")
        out += textwrap.wrap(f["action"], width, initial_indent="  → ", subsequent_indent="    ")
    freshness = reconciler.get("freshness", [])
    if freshness:
        out += ["", f"{'FRESHNESS (source: final object)':<58} {'LAG s':>9} {'TARGET s':>9}"]
        for entry in freshness:
            label = f"{entry['source']}: {entry['final']}"
            if len(label) > 58:  # the database is the part a reader can spare first
                label = f"{entry['source']}: {entry['final'].split('.', 1)[-1]}"
            lag = "-" if entry.get("lag_s") is None else f"{entry['lag_s']:.1f}"
            out.append(f"{_short(label, 58):<58} {lag:>9} {entry['target_s']:>9g}")
    return out


def _clock(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%H:%M:%S")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _offset(token: str | None) -> str:
    return "-" if token is None else str(int(token))


def command(
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Print the raw status JSON.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show the running daemon's sources, lanes, spools, channels and reconciler findings."""
    cfg = load_config(config)
    while True:
        with one_line_errors():
            status = fetch_status(cfg)
        if json:
            typer.echo(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
        else:
            screen = render(status, width=shutil.get_terminal_size((80, 24)).columns)
            # Home + clear, so the view refreshes in place instead of scrolling.
            typer.echo(("\x1b[H\x1b[2J" if watch else "") + screen)
        if not watch:
            return
        time.sleep(interval)
