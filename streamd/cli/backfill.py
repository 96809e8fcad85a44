"""`streamd backfill`: load existing files into a table through classic Snowpipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import anyio
import typer

from streamd.cli.common import ConfigOpt, load_config, one_line_errors
from streamd.install import needs_full_install


def command(
    paths: Annotated[list[Path], typer.Argument(help="NDJSON or JSON-array files, .gz or not.")],
    table: Annotated[str, typer.Option("--table", help="Target table DATABASE.SCHEMA.TABLE.")],
    config: ConfigOpt = None,
) -> None:
    """Load existing files into a table through classic Snowpipe (idempotent: re-runs skip)."""
    cfg = load_config(config)
    with one_line_errors():
        with needs_full_install("streamd backfill"):
            from streamd.sinks.files.backfill import backfill as run_backfill
        summary = anyio.run(run_backfill, cfg, table, paths, typer.echo)
    typer.echo(
        f"backfill: {summary.files} files, {summary.rows_loaded} of {summary.rows_sent} rows "
        f"loaded in {summary.seconds:.1f} s ({summary.rows_per_s:,.0f} rows/s), "
        f"{len(summary.failed)} files failed"
    )
    if summary.failed:
        raise typer.Exit(1)
