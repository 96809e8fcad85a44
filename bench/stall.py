"""Stall: the stand-in freezes commits while the daemon keeps producing; RSS, spool growth, drain.

The stand-in runs in this process (`streamd.standin.server.serve`) so its fault plan can be flipped
at runtime (`freeze_commits` / `release_commits`: appends still answer 200, nothing commits). The
daemon runs as a subprocess with a manufacturing source tuned to `--rate` rows/s (`--equipment`
machines at `equipment * 1000 / rate` ms each). Phases: `--warmup` seconds normal, `--freeze-s`
frozen, then released until every row produced before the release is committed. Every `--sample-s`
it prints the daemon's RSS, CPU, produced/committed rows and spool bytes (from its /status).
Targets: RSS flat within ±10 % of the pre-freeze level during the stall. When the lane's spool
reaches `spool.max_bytes` (`--spool-max-mb`; `when_full = "block"`), the sources wait: the bench
reports when that happened and how production stalled.

Usage: python bench/stall.py [--rate 10000] [--freeze-s 300] [--warmup 20] [--spool-max-mb 1024]
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from _daemon import (
    ProcSample,
    cpu_percent,
    daemon_config,
    manufacturing_sources,
    sample,
    spool_bytes,
    start_daemon,
    stop_daemon,
    table_counts,
    write_key,
)

from streamd.config.model import sql_dirs
from streamd.standin.server import Standin, StandinSettings, serve

ROW_BYTES = 620
"""About what one manufacturing sensor row takes in the spool (NDJSON plus frame header)."""


@dataclass(slots=True)
class Point:
    """One sample of the daemon during the run."""

    t: float
    phase: str
    proc: ProcSample
    produced: int
    committed: int
    spool: int
    blocked: bool


Phases = tuple[Point, Point, Point | None]
"""The samples at the freeze, at the release and once drained (None if never)."""


class Watcher:
    """Samples the daemon process and its /status, printing one line per sample."""

    def __init__(self, pid: int, admin: str, client: httpx.AsyncClient, t0: float) -> None:
        self.pid = pid
        self.admin = admin
        self.client = client
        self.t0 = t0
        self.points: list[Point] = []

    async def take(self, phase: str) -> Point:
        """Sample now, remember and print it."""
        status: dict[str, Any] = (await self.client.get(f"{self.admin}/status")).json()
        produced, committed = table_counts(status)
        blocked = any(lane["spool"] and lane["spool"]["writer_blocked"] for lane in status["lanes"])
        proc = sample(self.pid)
        point = Point(
            proc.at - self.t0, phase, proc, produced, committed, spool_bytes(status), blocked
        )
        prev = self.points[-1] if self.points else None
        self.points.append(point)
        cpu = f"{cpu_percent(prev.proc, proc):5.1f}%" if prev else "    - "
        print(
            f"{point.t:7.1f} s {phase:<8} RSS {proc.rss_mb:6.1f} MB  CPU {cpu}  "
            f"produced {produced:>10,}  committed {committed:>10,}  "
            f"spool {point.spool / 1e6:8.1f} MB{'  SPOOL FULL: sources wait' if blocked else ''}",
            flush=True,
        )
        return point

    async def run_for(self, phase: str, seconds: float, every: float) -> None:
        """Sample every `every` seconds for `seconds`."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await anyio.sleep(min(every, max(0.0, end - time.monotonic())))
            await self.take(phase)


async def bench(args: argparse.Namespace, root: Path) -> None:
    """Run the three phases and print the summary."""
    settings = StandinSettings(
        data_dir=root / "standin",
        sql_dirs=sql_dirs(),
        commit_delay_s=args.commit_delay_ms / 1000,
    )
    equipment = args.equipment
    interval_ms = equipment * 1000 / args.rate
    key = write_key(root)
    async with anyio.create_task_group() as tg:
        standin: Standin = await tg.start(serve, settings)
        config = daemon_config(
            root / "state",
            standin.url,
            key,
            manufacturing_sources(equipment, interval_ms),
            linger_ms=args.linger_ms,
        )
        config["spool"] = {"max_bytes": args.spool_max_mb * 2**20}
        if args.spool_max_mb * 2**20 < 64 * 2**20:
            config["spool"]["segment_bytes"] = args.spool_max_mb * 2**20 // 4
        proc, admin = await anyio.to_thread.run_sync(start_daemon, config, root)
        result: Phases | None = None
        try:
            with anyio.CancelScope() as measuring:
                tg.start_soon(stop_on_signal, measuring, standin)
                async with httpx.AsyncClient(timeout=60) as client:
                    watcher = Watcher(proc.pid, admin, client, time.monotonic())
                    result = await phases(args, watcher, standin)
        finally:
            # The stand-in serves on this loop: it must outlive the daemon's drain.
            with anyio.CancelScope(shield=True):
                drain_exit_s = await anyio.to_thread.run_sync(stop_daemon, proc, 120)
            tg.cancel_scope.cancel()
    if result is None:
        print("interrupted: daemon stopped, no summary")
        return
    report(args, watcher.points, *result, drain_exit_s)


async def stop_on_signal(measuring: anyio.CancelScope, standin: Standin) -> None:
    """On SIGINT/SIGTERM: stop measuring and release commits so the daemon can drain and exit."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            standin.faults.release_commits()
            measuring.cancel()
            return


async def phases(args: argparse.Namespace, watcher: Watcher, standin: Standin) -> Phases:
    """Warm-up, freeze, release and drain, sampling all along."""
    await watcher.take("start")
    await watcher.run_for("warmup", args.warmup, args.sample_s)
    standin.faults.freeze_commits()
    frozen_at = await watcher.take("frozen")
    await watcher.run_for("frozen", args.freeze_s, args.sample_s)
    standin.faults.release_commits()
    released = await watcher.take("released")
    deadline = time.monotonic() + args.drain_timeout
    drained: Point | None = None
    while time.monotonic() < deadline:
        await anyio.sleep(min(args.sample_s, 1.0))
        point = await watcher.take("draining")
        if point.committed >= released.produced:
            drained = point
            break
    await watcher.run_for("after", min(args.warmup, 10), args.sample_s)
    return frozen_at, released, drained


def report(
    args: argparse.Namespace,
    points: list[Point],
    frozen_at: Point,
    released: Point,
    drained: Point | None,
    drain_exit_s: float,
) -> None:
    """The summary lines."""
    warm = [p for p in points if p.phase == "warmup"] or [frozen_at]
    # The pre-freeze level: the later half of the warm-up, once start-up allocations settled.
    base_pts = warm[len(warm) // 2 :]
    base = sum(p.proc.rss_mb for p in base_pts) / len(base_pts)
    stall = [p for p in points if p.phase == "frozen"]
    lo = min(p.proc.rss_mb for p in stall)
    hi = max(p.proc.rss_mb for p in stall)
    dev = max(abs(lo - base), abs(hi - base)) / base * 100
    span = max(1e-9, released.t - frozen_at.t)
    produced_rate = (released.produced - frozen_at.produced) / span
    growth = (released.spool - frozen_at.spool) / span
    full = next((p for p in stall if p.blocked), None)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"offered {args.rate:,.0f} rows/s ({args.equipment} machines), linger_ms {args.linger_ms:g}, "
        f"stand-in commit delay {args.commit_delay_ms:g} ms, spool.max_bytes {args.spool_max_mb} MiB"
    )
    print(
        f"RSS before the freeze {base:.1f} MB; during the {span:.0f} s freeze {lo:.1f}-{hi:.1f} MB "
        f"(max deviation {dev:.1f} %) -> flat within ±10 %: {'MET' if dev <= 10 else 'MISSED'}"
    )
    # The baseline is a steady state only if the writer kept up: behind, it reads back 4 MB
    # batches from the spool, and RSS then sits above what the freeze itself costs.
    first, last = base_pts[0], base_pts[-1]
    took = max(1e-9, last.t - first.t)
    print(
        f"baseline samples: produced {(last.produced - first.produced) / took:,.0f} rows/s, "
        f"committed {(last.committed - first.committed) / took:,.0f} rows/s, "
        f"{frozen_at.produced - frozen_at.committed:,} rows uncommitted at the freeze"
    )
    print(
        f"during the freeze: produced {produced_rate:,.0f} rows/s; spool grew "
        f"{(released.spool - frozen_at.spool) / 1e6:,.1f} MB ({growth / 1e6:.2f} MB/s), "
        f"to {released.spool / 1e6:,.1f} MB"
    )
    if full is not None:
        print(
            f"spool full (spool.max_bytes, when_full=block) after {full.t - frozen_at.t:.0f} s of "
            "freeze: sources waited (production stalled, readiness reports the full spool)"
        )
    if drained is None:
        print(f"NOT drained within {args.drain_timeout:g} s of the release")
    else:
        rows = released.produced - frozen_at.committed
        took = max(1e-9, drained.t - released.t)
        print(
            f"drain after release: {took:.1f} s until committed >= the "
            f"{released.produced:,} rows produced by the release ({rows:,} rows were waiting); "
            f"committed {(drained.committed - released.committed) / took:,.0f} rows/s meanwhile "
            f"while the source went on offering {args.rate:,.0f}"
        )
    after = [p.proc.rss_mb for p in points if p.phase in ("released", "draining", "after")]
    print(
        f"RSS while draining and after: peak {max(after):.1f} MB "
        f"({(max(after) - base) / base * 100:+.1f} % of the pre-freeze level); "
        f"daemon stop (drain + exit) {drain_exit_s:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000, help="rows/s the source offers")
    parser.add_argument("--equipment", type=int, default=100, help="machines sharing the rate")
    parser.add_argument("--freeze-s", type=float, default=15, help="how long commits are frozen")
    parser.add_argument("--warmup", type=float, default=10, help="seconds before the freeze")
    parser.add_argument("--sample-s", type=float, default=2.0)
    parser.add_argument("--linger-ms", type=float, default=200)
    parser.add_argument("--commit-delay-ms", type=float, default=1000)
    parser.add_argument("--spool-max-mb", type=int, default=1024, help="spool.max_bytes in MiB")
    parser.add_argument("--drain-timeout", type=float, default=900)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the temp dirs go"
    )
    args = parser.parse_args()
    need = args.rate * (args.freeze_s + args.warmup) * ROW_BYTES
    free = shutil.disk_usage(args.dir).free
    print(
        f"disk free under {args.dir}: {free / 1e9:.1f} GB; this run may spool ~{need / 1e9:.2f} GB"
    )
    if need * 2 > free:
        sys.exit(f"not enough disk under {args.dir}: pass --dir elsewhere or a smaller run")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="stall-bench-") as tmp:
        anyio.run(bench, args, Path(tmp))


if __name__ == "__main__":
    main()
