"""Throughput of the delivery path: rows/s, MB/s and client CPU per million rows, vs bare orjson.

The stand-in runs in a separate process so the CPU figure is the daemon's own. Prints figures and
the command line. Usage: python bench/throughput.py [--rows N] [--shape sensor|wide]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

from streamd.config import Config
from streamd.daemon import Daemon
from streamd.keys import generate_key_pair
from streamd.testing import ListSource, sensor_rows, start_standin_process
from streamd.topology import RunSummary

SENSOR_TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    rows = sensor_rows(args.rows)

    t0 = time.process_time()
    body = b"\n".join(orjson.dumps(r) for r in rows)
    bare_cpu = time.process_time() - t0
    mb = len(body) / 1e6

    private_pem, _ = generate_key_pair()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_standin_process(Path(tmp) / "standin", "--commit-delay-ms", "200")
        try:
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

            async def deliver() -> RunSummary:
                daemon = Daemon(
                    config, sources=[ListSource("bench", SENSOR_TABLE, rows)], tables=[SENSOR_TABLE]
                )
                return await daemon.run()

            wall0, cpu0 = time.perf_counter(), time.process_time()
            summary = anyio.run(deliver)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    committed = summary.tables[SENSOR_TABLE].committed
    assert committed == len(rows), f"only {committed} of {len(rows)} rows committed"
    per_m = 1e6 / len(rows)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"rows delivered (committed): {committed:,}  NDJSON: {mb:.1f} MB  ({len(body) / len(rows):.0f} B/row)"
    )
    print(
        f"wall: {wall:.2f} s  -> {committed / wall:,.0f} rows/s, {mb / wall:.1f} MB/s (stand-in commit included)"
    )
    print(f"client CPU: {cpu:.2f} s  -> {cpu * per_m:.2f} CPU s per million rows")
    print(f"bare orjson NDJSON: {bare_cpu:.2f} s  -> {bare_cpu * per_m:.2f} CPU s per million rows")
    print(f"ratio delivered / bare serialisation: {cpu / bare_cpu:.1f}x")


if __name__ == "__main__":
    main()
