"""`streamd sql`: run one statement on the target: the SQL API when something serves it, else the files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import orjson
import typer

from streamd.cli.common import ConfigOpt, load_config, one_line_errors
from streamd.cli.inspect import DaemonNotRunning, fetch_status
from streamd.cli.target import account_key, sql_api_client
from streamd.clock import SystemClock
from streamd.config.model import Config
from streamd.install import needs_full_install
from streamd.snowflake.auth import load_private_key


async def run_statement(config: Config, statement: str) -> tuple[list[str], list[list[Any]]]:
    """Column names and rows of `statement`."""
    if config.target.kind == "local":
        try:
            status = fetch_status(config, timeout=1.0)
        except DaemonNotRunning:
            with needs_full_install("streamd sql with no daemon running"):
                from streamd.standin.storage.database import query_offline

            columns, rows = query_offline(Path(config.state_dir) / "standin", statement)
            return columns, [list(r) for r in rows]
        url = status["target"]["url"]
        pem = (Path(config.state_dir) / "local" / "rsa_key.p8").read_bytes()
        key = load_private_key(pem, None, source="target.private_key")
    else:
        url = config.target.control_url()
        key = account_key(config)
    async with httpx.AsyncClient(timeout=60) as http:
        client = sql_api_client(http, config, url, key, SystemClock())
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
