"""Latency at a fixed offered rate: event time → append acknowledged and → committed, p50/p99/max.

A source offers sensor-shaped rows at `--rate` rows/s on an absolute-deadline schedule, sending the
rows that have come due every `--tick-ms`, and records each row's send time (its event time). The
daemon runs in this process with one lane and a fresh state dir, so the i-th row sent gets spool
sequence (offset token) i. The channel writer's `batch_appended` / `batch_committed` log events
are captured by a structlog processor that stamps them with the monotonic clock and drops them;
each gives the time every row of its offset range was acknowledged or seen committed.

The stand-in runs in another process with a fixed `--commit-delay-ms` and `--timing-log`, which
records per batch when its append request reached the server, when the response went out and when
its commit finished, on the same system-wide monotonic clock. So each row's event → committed
splits into four parts:

- client before the server: event → append request received (linger, batching, waiting for the
  previous append, pacing, encoding and sending). Appends are serial per channel, so part of it
  may be the server's: the time the row's batch was ready (linger after its first row, or full)
  while the stand-in was handling an earlier append of the channel is "of which server busy";
- server append: received → response sent (the stand-in parsing the body);
- server commit: response sent → committed (the configured commit delay, the scheduler, DuckDB);
- client after the commit: committed → the client's status poll saw it. "of which next poll" is
  how long after the commit the client sent that poll (its poll schedule; from the tracker's
  `status_polled` debug event); the stand-in also logs each status call, and the time it spent
  answering the one that saw the commit (after the commit) is "of which server status call".

**Client-added latency is the two client parts** (before the server + after the commit); the
target (issue #9) is its p99 ≤ linger + 50 ms at 10k rows/s, judged on exactly that sum.
"client-added net of server time" also leaves out those two server waits (they matter when the
stand-in is slow on a loaded machine). When batches queue (a rate over one channel's capacity),
the client's turnaround between appends is printed too: its share of the serial append cycle.
The older estimate, committed minus the configured commit
delay, is printed too: it charges all of the stand-in's own time to the client.
The load average is printed with the figures: the benches share a small machine.

Usage: python bench/latency.py [--rate 1000|10000|50000] [--seconds N] [--linger-ms MS]
       [--status-poll-ms MS] [--commit-delay-ms MS] [--fsync always|interval|never]
       [--loop auto|uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from array import array
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import structlog
from _timing import PARTS, breakdown, server_log

from streamd.config.model import Config
from streamd.daemon import eventloop
from streamd.daemon.run import Daemon
from streamd.daemon.status import RunSummary
from streamd.metrics import Metrics
from streamd.rows import Envelope, Row, parse_offset
from streamd.snowflake.keys import generate_key_pair
from streamd.sources.base import SourceContext
from streamd.testing import sensor_rows, start_standin_process

SENSOR_TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
POOL = 10_000
"""Distinct prebuilt rows the source cycles through (each sent copy gets its own EVENT_ID)."""


class RateSource:
    """Offers `total` rows at `rate` rows/s: every tick it sends the rows whose deadline passed."""

    kind = "rate"

    def __init__(self, table: str, rate: float, total: int, tick_s: float) -> None:
        self.name = "rate"
        self.table = table
        self.rate = rate
        self.total = total
        self.tick_s = tick_s
        self.pool = sensor_rows(POOL)
        self.sent_at = array("d")
        """Monotonic send time of the i-th row sent (index i - 1: row i has offset token i)."""
        self.max_late_s = 0.0
        """The most a row was sent after its scheduled time (the source or pipeline falling behind)."""

    async def run(self, ctx: SourceContext) -> None:
        """Send every row on schedule, then return (end of input)."""
        start = time.monotonic()
        sent = 0
        tick = 0
        while sent < self.total:
            tick += 1
            now = time.monotonic()
            due = min(self.total, int((now - start) * self.rate) + 1)
            if sent < due:
                self.max_late_s = max(self.max_late_s, now - (start + sent / self.rate))
            while sent < due:
                base = self.pool[sent % POOL]
                row: Row = {**base, "EVENT_ID": f"latency:{sent}"}
                self.sent_at.append(time.monotonic())
                await ctx.send.send(Envelope(self.table, row))
                sent += 1
            delay = start + tick * self.tick_s - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)


class WriterEvents:
    """A structlog processor that records (monotonic time, rows, last offset) of writer events."""

    def __init__(self) -> None:
        self.appended: list[tuple[float, int, int]] = []
        self.committed: list[tuple[float, int, int]] = []
        self.polls: list[tuple[float, float]] = []
        """(started, ended) of each status poll, from the tracker's `status_polled` event."""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event = event_dict.get("event")
        if event in ("batch_appended", "batch_committed"):
            last = parse_offset(event_dict["offset_token"])
            assert last is not None
            record = (time.monotonic(), int(event_dict["rows"]), last)
            (self.appended if event == "batch_appended" else self.committed).append(record)
        elif event == "status_polled":
            self.polls.append((float(event_dict["started"]), time.monotonic()))
        elif event_dict.get("level") in ("warning", "error", "critical"):
            print(f"daemon {event_dict.get('level')}: {event} {dict(event_dict)}", file=sys.stderr)
        raise structlog.DropEvent

    def install(self) -> None:
        """Route every structlog event through this processor, debug level included."""
        structlog.configure(
            processors=[structlog.processors.add_log_level, self],
            wrapper_class=structlog.make_filtering_bound_logger(10),
            cache_logger_on_first_use=False,
        )


class LoopLag:
    """How late a 10 ms sleep in the daemon's event loop wakes: its stalls, which every row feels."""

    PERIOD_S = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        """Sleep and measure, until cancelled."""
        while True:
            t0 = time.monotonic()
            await anyio.sleep(self.PERIOD_S)
            self.lags.append(time.monotonic() - t0 - self.PERIOD_S)


def latencies(events: list[tuple[float, int, int]], sent_at: array[float]) -> list[float]:
    """Per row: event time → the first event that covered its offset; rows in offset order."""
    first: dict[int, tuple[float, int]] = {}
    for at, rows, last in events:
        # A reopen replays batches: the first acknowledgement of an offset range is the real one.
        first.setdefault(last, (at, rows))
    out: list[float] = []
    for last, (at, rows) in sorted(first.items()):
        out.extend(at - sent_at[seq - 1] for seq in range(last - rows + 1, last + 1))
    return out


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of sorted `values`."""
    return values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]


def summary(label: str, values: list[float], minus_s: float = 0.0) -> str:
    """`label: p50 … p99 … max …` in milliseconds, `minus_s` subtracted."""
    v = sorted(x - minus_s for x in values)
    return (
        f"{label}: p50 {pct(v, 0.5) * 1000:.1f} ms  p99 {pct(v, 0.99) * 1000:.1f} ms  "
        f"max {v[-1] * 1000:.1f} ms  (n={len(v):,})"
    )


def append_requests(metrics: Metrics) -> str:
    """Mean duration of the append requests (the writer's `streamd_request_seconds{call=append}`)."""
    labels = {"call": "append"}
    count = metrics.registry.get_sample_value("streamd_request_seconds_count", labels) or 0.0
    total = metrics.registry.get_sample_value("streamd_request_seconds_sum", labels) or 0.0
    return f"append requests: {count:.0f}, mean {total / max(1.0, count) * 1000:.1f} ms each (serial per channel)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000, help="rows/s offered")
    parser.add_argument("--seconds", type=float, default=5, help="how long rows are offered")
    parser.add_argument(
        "--tick-ms", type=float, default=5, help="send rows that came due this often"
    )
    parser.add_argument("--linger-ms", type=float, default=200, help="delivery.linger_ms")
    parser.add_argument(
        "--status-poll-ms", type=float, help="delivery.status_poll_ms (default: the config's)"
    )
    parser.add_argument("--commit-delay-ms", type=float, default=200, help="stand-in commit delay")
    parser.add_argument(
        "--fsync",
        choices=["always", "interval", "never"],
        default="interval",
        help="spool.fsync (interval: rows wait up to spool.fsync_interval_ms for the next fsync)",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the daemon's event loop, as the config's event_loop (auto: uvloop when installed)",
    )
    args = parser.parse_args()
    total = int(args.rate * args.seconds)
    source = RateSource(SENSOR_TABLE, args.rate, total, args.tick_ms / 1000)
    events = WriterEvents()
    events.install()

    private_pem, _ = generate_key_pair()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        timing_log = Path(tmp) / "standin-timing.jsonl"
        proc, url = start_standin_process(
            Path(tmp) / "standin",
            "--commit-delay-ms",
            str(args.commit_delay_ms),
            "--timing-log",
            str(timing_log),
        )
        try:
            config = Config.model_validate(
                {
                    "state_dir": str(Path(tmp) / "state"),
                    "target": {
                        "kind": "snowflake",
                        "url": url,
                        "private_key": private_pem.decode(),
                    },
                    "delivery": {
                        "linger_ms": args.linger_ms,
                        **(
                            {}
                            if args.status_poll_ms is None
                            else {"status_poll_ms": args.status_poll_ms}
                        ),
                        "drain_timeout_s": 600,
                    },
                    "spool": {"fsync": args.fsync},
                    "admin": {"enabled": False},
                }
            )

            daemons: list[Daemon] = []
            loop_lag = LoopLag()

            async def deliver() -> RunSummary:
                daemons.append(Daemon(config, sources=[source], tables=[SENSOR_TABLE]))
                async with anyio.create_task_group() as tg:
                    tg.start_soon(loop_lag.run)
                    run_summary = await daemons[0].run()
                    tg.cancel_scope.cancel()
                return run_summary

            wall0 = time.perf_counter()
            result = eventloop.run(deliver, args.loop)
            wall = time.perf_counter() - wall0
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        server, status_calls = server_log(timing_log)
    load_after = os.getloadavg()

    committed = result.tables[SENSOR_TABLE].committed
    assert committed == total, f"only {committed} of {total} rows committed"
    appended_rows = sum(rows for _, rows, _ in events.appended)
    committed_rows = sum(rows for _, rows, _ in events.committed)
    # Retries or reopens re-append rows: then the last append of an offset counts.
    assert committed_rows == total, f"batch_committed covered {committed_rows} of {total} rows"
    # The i-th row sent must be offset i (one lane, fresh spool); anything else breaks the join.
    offsets = [(last - rows + 1, last) for _, rows, last in events.committed]
    span = (min(o[0] for o in offsets), max(o[1] for o in offsets))
    assert span == (1, total), f"committed offsets span {span}, expected (1, {total})"
    offered = total / (source.sent_at[-1] - source.sent_at[0]) if total > 1 else 0.0
    delay_s = args.commit_delay_ms / 1000
    append_lat = latencies(events.appended, source.sent_at)
    commit_lat = latencies(events.committed, source.sent_at)
    parts = breakdown(
        events.committed,
        server,
        status_calls,
        events.polls,
        source.sent_at,
        args.linger_ms / 1000,
    )
    target_ms = args.linger_ms + 50
    client_p99 = pct(sorted(parts["client-added"]), 0.99) * 1000
    append_p99 = pct(sorted(append_lat), 0.99) * 1000
    polls = sum(t.polls for t in daemons[0].delivery.trackers.values())

    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"offered: {args.rate:,.0f} rows/s for {args.seconds:g} s = {total:,} rows; achieved "
        f"{offered:,.0f} rows/s; latest send behind schedule {source.max_late_s * 1000:.1f} ms"
    )
    print(
        f"linger_ms {args.linger_ms:g}, status_poll_ms {config.delivery.status_poll_ms:g}, "
        f"spool.fsync {args.fsync}, loop {'uvloop' if eventloop.uses_uvloop(args.loop) else 'asyncio'}, "
        f"tick {args.tick_ms:g} ms; {len(events.appended)} appends "
        f"({appended_rows / max(1, len(events.appended)):,.0f} rows each); wall {wall:.1f} s"
    )
    print(summary("event -> append acknowledged", append_lat))
    print(append_requests(daemons[0].metrics))
    if parts["turnaround"]:
        label = "client turnaround (response sent -> next append received, next batch waiting)"
        print(summary(label, parts["turnaround"]).replace("(n=", "(batches="))
    print(summary("event -> committed (seen by status poll)", commit_lat))
    print(f"status polls: {polls} ({polls / wall:.1f}/s over the run)")
    print(summary("client event loop lag (10 ms sleeps, how late)", loop_lag.lags))
    print(f"stand-in commit delay: {args.commit_delay_ms:g} ms (configured; in server commit)")
    print(summary("committed - commit delay (old estimate)", commit_lat, delay_s))
    print("event -> committed, per row, split by the stand-in's --timing-log:")
    for name, what in PARTS:
        print(summary(f"  {name} ({what})", parts[name]))
    print(
        summary("client-added = client before server + client after commit", parts["client-added"])
    )
    print(summary("client-added net of server time", parts["client-added net"]))
    print(
        f"target: client-added p99 <= linger + 50 ms = {target_ms:g} ms -> "
        f"{client_p99:.1f} ms {'MET' if client_p99 <= target_ms else 'MISSED'} "
        f"(append-acknowledged p99 {append_p99:.1f} ms)"
    )
    print(
        "load average (1/5/15 min): before "
        + "/".join(f"{x:.2f}" for x in load_before)
        + ", after "
        + "/".join(f"{x:.2f}" for x in load_after)
        + f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
