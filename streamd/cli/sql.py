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
from streamd.clock import SystemClock
from streamd.config.model import Config
from streamd.install import needs_full_install
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.sql_api import SqlApiClient


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
        passphrase = None
    else:
        url = config.target.control_url()
        if config.target.private_key is None:
            from streamd.errors import ConfigError

            raise ConfigError('target.private_key: required for kind = "snowflake"')
        pem = config.target.private_key.get_secret_value().encode()
        pw = config.target.private_key_passphrase
        passphrase = pw.get_secret_value().encode() if pw else None
    clock = SystemClock()
    key = load_private_key(pem, passphrase, source="target.private_key")
    async with httpx.AsyncClient(timeout=60) as http:
        client = SqlApiClient(
            http, KeyPairAuth(key, config.target.account, config.target.user, clock), url, clock
        )
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
