"""Backfill throughput: a generated NDJSON file of --rows sensor rows loaded through files mode.

The stand-in runs in another process (`streamd standin serve`); the backfill writes its gzip files
straight into the stand-in's stage directory, submits them with insertFiles (snowflake-ingest) and
waits for every load to be confirmed. Prints rows/s (rows confirmed loaded over wall time from the
first read of the input to the last confirmation), the file count, and the table's row count.
Usage: python bench/backfill.py [--rows N] [--file-rows N]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import anyio
import orjson

from streamd.config.model import Config
from streamd.sinks.files.backfill import run_backfill
from streamd.snowflake.keys import generate_key_pair
from streamd.testing import sensor_rows, standin_query, start_standin_process

TABLE = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"


def write_input(path: Path, rows: int) -> int:
    """An NDJSON file of `rows` sensor rows with unique EVENT_IDs; returns its size."""
    template = sensor_rows(1000)
    with path.open("wb") as f:
        for start in range(0, rows, 1000):
            chunk = []
            for i, row in enumerate(template[: min(1000, rows - start)]):
                chunk.append(orjson.dumps({**row, "EVENT_ID": f"backfill:{start + i}"}))
            f.write(b"\n".join(chunk) + b"\n")
    return path.stat().st_size


def main() -> None:
    """Generate, backfill, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--file-rows", type=int, default=100_000)
    args = parser.parse_args()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    private_pem, _ = generate_key_pair()
    with tempfile.TemporaryDirectory(prefix="bench-backfill-", dir=".") as tmp:
        base = Path(tmp).resolve()
        source = base / "history.ndjson"
        t0 = time.perf_counter()
        size = write_input(source, args.rows)
        print(
            f"generated {args.rows:,} rows, {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s"
        )
        proc, url = start_standin_process(base / "standin", "--commit-delay-ms", "200")
        try:
            config = Config.model_validate(
                {
                    "state_dir": str(base / "state"),
                    "target": {"kind": "snowflake", "url": url},
                    "files": {
                        "max_file_rows": args.file_rows,
                        "max_file_bytes": 1_000_000_000,
                        "report_poll_s": 0.5,
                        "stage": {"directory": str(base / "standin" / "stages")},
                    },
                }
            )
            summary = anyio.run(
                lambda: run_backfill(
                    config,
                    TABLE,
                    [source],
                    url=url,
                    pem=private_pem,
                    passphrase=None,
                    echo=lambda line: print("  " + line),
                )
            )
            [[count]] = standin_query(url, f"select count(*) from {TABLE}")  # noqa: S608
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            assert proc.stderr is not None
            proc.stderr.close()
    print(
        f"backfilled {summary.rows_loaded:,} rows in {summary.files} files in "
        f"{summary.seconds:.1f} s: {summary.rows_per_s:,.0f} rows/s "
        f"({size / 1e6 / summary.seconds:.1f} MB/s of NDJSON); table holds {int(count or 0):,} rows; "
        f"{len(summary.failed)} files failed"
    )


if __name__ == "__main__":
    main()
