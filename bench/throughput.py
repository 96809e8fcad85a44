"""Throughput of the delivery path: rows/s, MB/s and client CPU per million rows, vs bare orjson.

The stand-in runs in a separate process so the CPU figure is the daemon's own. Prints figures and
the command line. Usage: python bench/throughput.py [--rows N] [--shape sensor|wide]

`sensor` is the manufacturing sensor row (12 columns, nested payload); `wide` is a 40-column row
(ints, floats, short and long strings, booleans, timestamps, one nested object) in a table the
bench creates through the stand-in's SQL API (its default `<TABLE>-STREAMING` pipe takes the rows).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import orjson

from streamd.config.model import Config
from streamd.daemon import eventloop
from streamd.daemon.run import Daemon
from streamd.daemon.status import RunSummary
from streamd.rows import Row
from streamd.snowflake.keys import generate_key_pair
from streamd.testing import ListSource, sensor_rows, standin_query, start_standin_process

SENSOR_TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
WIDE_TABLE = "MANUFACTURING_DEMO.RAW_DATA.BENCH_WIDE"

# 40 columns: 1 id + 8 ints + 8 floats + 8 short strings + 4 long strings + 5 booleans
# + 5 timestamps + 1 nested object.
WIDE_COLUMNS: list[tuple[str, str]] = [
    ("ID", "NUMBER(38,0)"),
    *[(f"I{k}", "NUMBER(38,0)") for k in range(8)],
    *[(f"F{k}", "FLOAT") for k in range(8)],
    *[(f"S{k}", "VARCHAR") for k in range(8)],
    *[(f"L{k}", "VARCHAR") for k in range(4)],
    *[(f"B{k}", "BOOLEAN") for k in range(5)],
    *[(f"T{k}", "TIMESTAMP_NTZ") for k in range(5)],
    ("ATTRS", "VARIANT"),
]
_WORDS = [
    "spindle",
    "coolant",
    "torque",
    "hopper",
    "gantry",
    "nozzle",
    "clamp",
    "servo",
    "belt",
    "die",
]


def wide_rows(n: int) -> list[Row]:
    """`n` rows of the 40-column wide shape (~1 KB of NDJSON each)."""
    start = datetime(2026, 11, 23, tzinfo=UTC).replace(tzinfo=None)
    rows: list[Row] = []
    for i in range(n):
        row: Row = {"ID": i}
        for k in range(8):
            row[f"I{k}"] = (i * (k + 3)) % 1_000_003 - 500_000
            row[f"F{k}"] = (i % 997) * (k + 1) / 7.0
            row[f"S{k}"] = f"{_WORDS[(i + k) % 10]}-{k}"
        for k in range(4):
            words = (_WORDS[(i + k + j) % 10] for j in range(14))
            row[f"L{k}"] = f"#{i} " + " ".join(words)
        for k in range(5):
            row[f"B{k}"] = (i >> k) & 1 == 1
            ts = start + timedelta(milliseconds=i, minutes=k)
            row[f"T{k}"] = ts.isoformat(timespec="microseconds")
        row["ATTRS"] = {
            "plant": "P-01",
            "cell": i % 12,
            "tags": [_WORDS[i % 10], _WORDS[(i + 3) % 10]],
            "limits": {"lo": -1.5, "hi": 98.25, "unit": "C"},
        }
        rows.append(row)
    return rows


def create_wide_table(url: str) -> None:
    """The wide table in the stand-in (tables made at runtime get their default streaming pipe)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in WIDE_COLUMNS)
    standin_query(url, f"create table {WIDE_TABLE} ({columns})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--shape", choices=["sensor", "wide"], default="sensor")
    parser.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="the event loop, as the config's event_loop (auto: uvloop when installed)",
    )
    args = parser.parse_args()
    table = SENSOR_TABLE if args.shape == "sensor" else WIDE_TABLE
    rows = sensor_rows(args.rows) if args.shape == "sensor" else wide_rows(args.rows)

    # The bare cost is the median of three passes: one pass alone swings ±30 % on a busy machine.
    passes = []
    for _ in range(3):
        t0 = time.process_time()
        body = b"\n".join(orjson.dumps(r) for r in rows)
        passes.append(time.process_time() - t0)
    bare_cpu = sorted(passes)[1]
    mb = len(body) / 1e6

    private_pem, _ = generate_key_pair()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_standin_process(Path(tmp) / "standin", "--commit-delay-ms", "200")
        try:
            if args.shape == "wide":
                create_wide_table(url)
            config = Config.model_validate(
                {
                    "state_dir": str(Path(tmp) / "state"),
                    "target": {
                        "kind": "snowflake",
                        "url": url,
                        "private_key": private_pem.decode(),
                    },
                    "delivery": {"linger_ms": 50, "status_poll_ms": 100, "drain_timeout_s": 600},
                    "admin": {"enabled": False},
                    "log": {"level": "warning"},
                }
            )
            from streamd.logs import configure

            configure("json", "warning")

            marks: list[float] = []

            async def deliver() -> RunSummary:
                daemon = Daemon(config, sources=[ListSource("bench", table, rows)], tables=[table])
                async with anyio.create_task_group() as tg:
                    tg.start_soon(mark_ready, daemon)
                    return await daemon.run()

            async def mark_ready(daemon: Daemon) -> None:
                # From channels open on: process start-up (imports, key, TLS context) is a fixed
                # cost, not a per-row one.
                await daemon.ready.wait()
                marks.extend([time.perf_counter(), time.process_time()])

            cpu0 = time.process_time()
            summary = eventloop.run(deliver, args.loop)
            wall, cpu = time.perf_counter() - marks[0], time.process_time() - marks[1]
            startup_cpu = marks[1] - cpu0
            # Committed offsets include rows the server rejected: count what the table holds.
            count = f"select count(*) from {table}"  # noqa: S608 - one of our two constants
            in_table = int(standin_query(url, count)[0][0] or 0)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    committed = summary.tables[table].committed
    assert committed == len(rows), f"only {committed} of {len(rows)} rows committed"
    assert in_table == len(rows), f"the table holds {in_table} of {len(rows)} rows"
    per_m = 1e6 / len(rows)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    loop = "uvloop" if eventloop.uses_uvloop(args.loop) else "asyncio"
    print(f"shape: {args.shape} ({len(rows[0])} columns), event loop: {loop}")
    print(
        f"rows delivered (committed): {committed:,} (table holds {in_table:,})  NDJSON: {mb:.1f} MB  ({len(body) / len(rows):.0f} B/row)"
    )
    print(
        f"wall: {wall:.2f} s  -> {committed / wall:,.0f} rows/s, {mb / wall:.1f} MB/s (stand-in commit included)"
    )
    print(
        f"client CPU: {cpu:.2f} s  -> {cpu * per_m:.2f} CPU s per million rows"
        f" (from channels open; start-up before that: {startup_cpu:.2f} s)"
    )
    print(f"bare orjson NDJSON: {bare_cpu:.2f} s  -> {bare_cpu * per_m:.2f} CPU s per million rows")
    print(f"ratio delivered / bare serialisation: {cpu / bare_cpu:.1f}x")


if __name__ == "__main__":
    main()
