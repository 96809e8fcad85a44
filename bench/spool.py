"""Spool append throughput per fsync policy and batch size, read-back speed, bytes on disk per row.

Appends realistic ~550-byte NDJSON rows to a fresh lane spool on the filesystem holding --dir
(default: a temp dir under the current directory, so the figures are for this disk, not tmpfs).
Usage: python bench/spool.py [--rows N] [--single-rows N] [--dir PATH]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import orjson

from streamd.clock import SystemClock
from streamd.spool import LaneSpool, SpoolConfig


def ndjson_rows(n: int) -> list[bytes]:
    """Manufacturing-sensor-shaped rows (nested raw payload), ~550 bytes each."""
    start = datetime(2026, 11, 23, tzinfo=UTC)
    out = []
    for i in range(n):
        ts = (start + timedelta(milliseconds=i)).isoformat(timespec="microseconds")
        row = {
            "EVENT_ID": f"sensor-EQ-{i % 20 + 1:04d}:{i:012d}",
            "EVENT_TIMESTAMP": ts,
            "EQUIPMENT_ID": f"EQ-{i % 20 + 1:04d}",
            "EQUIPMENT_TYPE": "CNC_MACHINE",
            "LINE_ID": f"LINE-0{i % 4 + 1}",
            "TEMPERATURE": round(71.5 + (i % 97) / 10, 2),
            "PRESSURE": round(101.3 + (i % 13) / 7, 3),
            "VIBRATION": round(0.42 + (i % 11) / 100, 3),
            "SPEED": 1500.0 + i % 50,
            "STATUS": "RUNNING",
            "IS_ANOMALY": i % 100 == 0,
        }
        row["RAW_PAYLOAD"] = {k.lower(): v for k, v in row.items()}
        out.append(orjson.dumps(row))
    return out


async def run_one(base: Path, fsync: str, lines: list[bytes], batch: int) -> tuple[float, int]:
    """Seconds to append `lines` in batches of `batch`, and the bytes the spool holds after."""
    directory = Path(tempfile.mkdtemp(prefix=f"{fsync}-{batch}-", dir=base))
    config = SpoolConfig(fsync=fsync, max_bytes=4 * 1024**3)  # type: ignore[arg-type]
    spool = await LaneSpool.open(directory, config, SystemClock())
    async with anyio.create_task_group() as tg:
        await tg.start(spool.run)
        t0 = time.perf_counter()
        for i in range(0, len(lines), batch):
            await spool.append(lines[i : i + batch])
        elapsed = time.perf_counter() - t0
        if fsync == "interval":
            await spool.wait_synced(spool.next_seq - 1)
        tg.cancel_scope.cancel()
    t0 = time.perf_counter()
    seq, got = 1, 0
    while rows := await spool.read(seq, 1000, 4 * 1024**2):
        seq, got = rows[-1][0] + 1, got + len(rows)
    read_s = time.perf_counter() - t0
    assert got == len(lines)
    on_disk = spool.bytes_on_disk
    await spool.aclose()
    if batch == 1000 and fsync == "never":
        print(f"  read back {got} rows in batches of 1000: {got / read_s:,.0f} rows/s")
    return elapsed, on_disk


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--single-rows", type=int, default=200_000, help="rows for batch size 1")
    parser.add_argument("--dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    print("command:", shlex.join([Path(sys.executable).name, *sys.argv]))
    lines = ndjson_rows(max(args.rows, args.single_rows))
    payload = sum(map(len, lines[: args.rows])) / args.rows
    print(
        f"rows: {args.rows} (batch 1000), {args.single_rows} (batch 1); mean payload {payload:.0f} B"
    )
    with tempfile.TemporaryDirectory(prefix="bench-spool-", dir=args.dir) as base:
        fs = os.statvfs(base)
        print(f"dir: {base} (block size {fs.f_bsize})")
        print(
            f"{'fsync':<9}{'batch':>6}{'rows':>9}{'seconds':>9}{'rows/s':>11}{'MB/s':>8}{'B/row':>8}"
        )
        for fsync in ("always", "interval", "never"):
            for batch, n in ((1000, args.rows), (1, args.single_rows)):
                seconds, on_disk = await run_one(Path(base), fsync, lines[:n], batch)
                print(
                    f"{fsync:<9}{batch:>6}{n:>9}{seconds:>9.2f}{n / seconds:>11,.0f}"
                    f"{on_disk / seconds / 1e6:>8.1f}{on_disk / n:>8.1f}"
                )


if __name__ == "__main__":
    anyio.run(main)
