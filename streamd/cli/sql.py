"""`streamd sql`: run one statement on the target through the SQL API (a local stand-in if needed)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
import orjson
import typer

from streamd.cli.common import ConfigOpt, load_config, one_line_errors
from streamd.cli.target import sql_client
from streamd.config.model import Config


async def run_statement(config: Config, statement: str) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows of `statement`, through the SQL API whether or not a daemon runs.

    With no daemon on the local target, a stand-in is started on its data dir for the statement:
    the same SQL engine, statements and result shapes (values as strings) as through the daemon.
    """
    async with sql_client(config, 60) as client:
        result = await client.execute(statement, role=config.target.role)
    return result.columns, [list(r) for r in result.rows]


def command(
    statement: Annotated[str, typer.Argument(help="One SQL statement, Snowflake dialect.")],
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Print rows as JSON objects.")] = False,
) -> None:
    """Run a statement against the configured target and print the rows."""
    cfg = load_config(config)
    with one_line_errors():
        columns, rows = anyio.run(run_statement, cfg, statement)
    if json:
        typer.echo(
            orjson.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str).decode()
        )
        return
    typer.echo("\t".join(columns))
    for row in rows:
        typer.echo("\t".join("NULL" if v is None else str(v) for v in row))
