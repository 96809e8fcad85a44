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
from pathlib import Path

import anyio
import orjson

from streamd.clock import SystemClock
from streamd.spool import LaneSpool, SpoolConfig
from streamd.testing import sensor_rows


def ndjson_rows(n: int) -> list[bytes]:
    """Manufacturing-sensor-shaped rows (nested raw payload), ~570 bytes each, encoded."""
    return [orjson.dumps(row) for row in sensor_rows(n)]


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
