"""Scale: N concurrent sensor tasks at 1 Hz each in one daemon process: RSS, CPU %, channels, rows/s.

For each `--tasks` count the daemon runs as a subprocess (`python -m streamd run --config <generated
toml>`) with manufacturing sources of N machines at a 1,000 ms sensor interval (one task per
machine; counts over 9,999 are split across sources with their own id_prefix). The stand-in runs in
another process. Once channels are open and the produced rate has reached 90 % of N rows/s (every
task has started), and after `--warmup` more seconds, the daemon's RSS (/proc VmRSS) and CPU
(utime + stime) are sampled every `--sample-s` for `--seconds`, with the committed row count from
its admin endpoint (/status), and at the end the fullest lane and how many producers wait on it
(a full lane means the pipeline is behind the offered rate and every waiting producer holds a row).
Target: 10,000 tasks with RSS <= 250 MB. `--interval-ms` slows every task (2000: 0.5 Hz) to measure
the memory of N tasks apart from the pipeline's throughput. `--pause-s S` then stops the daemon
(SIGSTOP) for S seconds, as a busy machine or a long pause would, and reports whether and when it
caught up: every producer is S seconds late and emits its due rows back to back, so the lane
fills, and the daemon catches up only if a full lane costs it no more per row than an empty one.

Usage: python bench/scale.py [--tasks 1 1000 10000] [--seconds N] [--warmup S] [--interval-ms MS]
       [--pause-s S]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _daemon import (
    cpu_percent,
    daemon_config,
    exit_on_sigterm,
    manufacturing_sources,
    sample,
    start_daemon,
    stop_daemon,
    table_counts,
    write_key,
)

from streamd.testing import start_standin_process

RSS_TARGET_MB = 250


def status(admin: str) -> dict[str, Any]:
    """The daemon's /status JSON."""
    body: dict[str, Any] = httpx.get(f"{admin}/status", timeout=30).json()
    return body


def wait_ready(admin: str, timeout_s: float) -> float:
    """Seconds until /readyz answers 200 (channels open)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if httpx.get(f"{admin}/readyz", timeout=30).status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise RuntimeError(f"daemon not ready within {timeout_s} s")


def wait_ramp(admin: str, offered: float, timeout_s: float) -> float | None:
    """Seconds until the daemon produces >= 90 % of `offered` rows/s over one second; None if never.

    Every task reserves its first durable block of sequence numbers as it starts, so 10,000 tasks
    take a while before all of them produce.
    """
    t0 = time.monotonic()
    before, _ = table_counts(status(admin))
    while time.monotonic() - t0 < timeout_s:
        time.sleep(1.0)
        now, _ = table_counts(status(admin))
        if now - before >= 0.9 * offered:
            return time.monotonic() - t0
        before = now
    return None


def run_one(tasks: int, args: argparse.Namespace, url: str, root: Path) -> str:
    """One daemon with `tasks` sensor tasks; the result line."""
    directory = root / f"tasks-{tasks}"
    key = write_key(directory)
    config = daemon_config(
        directory / "state",
        url,
        key,
        manufacturing_sources(tasks, args.interval_ms),
        linger_ms=args.linger_ms,
    )
    offered = tasks * 1000 / args.interval_ms
    config["event_loop"] = args.loop
    t0 = time.monotonic()
    proc, admin = start_daemon(config, directory)
    try:
        ready_s = wait_ready(admin, 300) + (time.monotonic() - t0)
        ramp_s = wait_ramp(admin, offered, args.ramp_timeout)
        time.sleep(args.warmup)
        first = sample(proc.pid)
        produced0, committed0 = table_counts(status(admin))
        samples = [first]
        while samples[-1].at - first.at < args.seconds:
            time.sleep(args.sample_s)
            samples.append(sample(proc.pid))
        last_status = status(admin)
        produced1, committed1 = table_counts(last_status)
        last = samples[-1]
        recovery = pause_and_recover(proc.pid, admin, args) if args.pause_s > 0 else ""
    finally:
        drain_s = stop_daemon(proc)
    rss = [s.rss_mb for s in samples]
    cpus = [cpu_percent(a, b) for a, b in itertools.pairwise(samples)]
    window = max(1e-9, last.at - first.at)
    rate = (committed1 - committed0) / window
    produced_rate = (produced1 - produced0) / window
    ramp = "never reached 90 % of the offered rate" if ramp_s is None else f"{ramp_s:.1f} s"
    channels = len(last_status["channels"])
    fullest = fullest_lane(last_status)
    verdict = ""
    if tasks >= 10_000:
        verdict = f"  target RSS <= {RSS_TARGET_MB} MB: {'MET' if max(rss) <= RSS_TARGET_MB else 'MISSED'}"
    return (
        f"tasks {tasks:>6,}: RSS {min(rss):.0f}-{max(rss):.0f} MB (last {rss[-1]:.0f})  "
        f"CPU {cpu_percent(first, last):.1f}% of a core (samples {min(cpus):.0f}-{max(cpus):.0f}%)  "
        f"channels {channels}  produced {produced_rate:,.0f} / committed {rate:,.0f} rows/s "
        f"(offered {offered:,.0f})  lane {fullest['depth']:,}/{fullest['capacity']:,} with "
        f"{fullest['producers_waiting']:,} producers waiting  "
        f"ready after {ready_s:.1f} s, all tasks producing after {ramp}, "
        f"drain+exit {drain_s:.1f} s{verdict}{recovery}"
    )


def fullest_lane(body: dict[str, Any]) -> dict[str, Any]:
    """The lane with the most rows buffered in a /status body."""
    lane: dict[str, Any] = max(body["lanes"], key=lambda lane: lane["depth"])
    return lane


def pause_and_recover(pid: int, admin: str, args: argparse.Namespace) -> str:
    """SIGSTOP the daemon for `--pause-s`, then time it until it has caught up; the result text.

    Caught up: two polls in a row with no producer waiting and the fullest lane under a tenth of
    its capacity (every late producer has emitted its due rows).
    """
    before, _ = table_counts(status(admin))
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(args.pause_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    resumed = time.monotonic()
    lane = fullest_lane(status(admin))
    calm = 0
    peak_waiting = lane["producers_waiting"]
    while time.monotonic() - resumed < args.recover_timeout:
        time.sleep(0.5)
        body = status(admin)
        lane = fullest_lane(body)
        peak_waiting = max(peak_waiting, lane["producers_waiting"])
        calm = (
            calm + 1
            if not lane["producers_waiting"] and lane["depth"] < lane["capacity"] / 10
            else 0
        )
        if calm == 2:
            produced, _ = table_counts(body)
            took = time.monotonic() - resumed
            return (
                f"\n    after a {args.pause_s:g} s pause (SIGSTOP): caught up in {took:.1f} s, "
                f"{(produced - before) / (args.pause_s + took):,.0f} rows/s produced over pause + "
                f"catch-up, up to {peak_waiting:,} producers waiting on the full lane"
            )
    return (
        f"\n    after a {args.pause_s:g} s pause (SIGSTOP): NOT caught up within "
        f"{args.recover_timeout:g} s: lane {lane['depth']:,}/{lane['capacity']:,}, "
        f"{lane['producers_waiting']:,} producers waiting"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--seconds", type=float, default=10, help="measured window per count")
    parser.add_argument("--warmup", type=float, default=5, help="seconds after ready, unmeasured")
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument(
        "--ramp-timeout", type=float, default=300, help="most seconds to wait for all tasks"
    )
    parser.add_argument("--linger-ms", type=float, default=200)
    parser.add_argument("--interval-ms", type=float, default=1000, help="each task's interval")
    parser.add_argument(
        "--loop", choices=["auto", "uvloop", "asyncio"], default="auto", help="config event_loop"
    )
    parser.add_argument("--commit-delay-ms", type=float, default=1000)
    parser.add_argument(
        "--pause-s", type=float, default=0, help="after the window, SIGSTOP the daemon this long"
    )
    parser.add_argument(
        "--recover-timeout", type=float, default=120, help="most seconds to wait for catching up"
    )
    args = parser.parse_args()
    exit_on_sigterm()
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"sensor tasks every {args.interval_ms:g} ms, linger_ms {args.linger_ms:g}, "
        f"stand-in commit delay "
        f"{args.commit_delay_ms:g} ms, window {args.seconds:g} s after {args.warmup:g} s warm-up"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        proc, url = start_standin_process(
            root / "standin", "--commit-delay-ms", str(args.commit_delay_ms)
        )
        try:
            for tasks in args.tasks:
                print(run_one(tasks, args, url, root), flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
