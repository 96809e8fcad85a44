"""The `streamd` Typer app and its console-script entry point.

Each command group lives in a module of its own and is registered here; what they share (the
`--config` option and one-line failures) is in `cli/common.py`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from streamd.cli import backfill, common, inspect, keygen, run, setup, sql
from streamd.cli.config import config_app
from streamd.cli.standin import standin_app

HELP = """\
streamd moves events into Snowflake: it produces or receives rows (synthetic plant and retail
data, HTTP push, NDJSON files, MQTT), keeps them in a durable local spool and delivers each one
exactly once over Snowpipe Streaming, or through classic Snowpipe for bulk tables. Without
--config it runs against a local Snowflake stand-in, so it works out of the box.

Start the daemon with `streamd run` and watch it with `streamd inspect`; `setup` creates the
shipped pipelines, `sql` queries the target, `keygen` makes the key pair for a real account,
`backfill` loads existing files, `config` checks a config file and `standin` serves the local
stand-in on its own. Every problem is reported as one line on stderr, with a non-zero exit code."""

# Unexpected errors reach main() as they are (no rich traceback): main says them in one line.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=HELP, pretty_exceptions_enable=False
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    common.DEBUG = debug


app.command("run")(run.command)
app.command("keygen")(keygen.command)
app.command("inspect")(inspect.command)
app.command("sql")(sql.command)
app.command("backfill")(backfill.command)
app.command("setup")(setup.command)
app.add_typer(config_app, name="config")
app.add_typer(standin_app, name="standin")


def main() -> None:
    """Console-script entry point: Ctrl-C exits 130, an unexpected error is one line (exit 1)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if common.DEBUG:
            raise
        typer.echo(f"streamd: {common.unexpected(exc)}", err=True)
        sys.exit(1)
