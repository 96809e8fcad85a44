"""`streamd setup`: apply the shipped `sql/` pipelines through the SQL API, statement by statement.

Files are applied in the order of their number prefix across the chosen domains (`01_` of every
domain, then `02_`, … then `10_`, …), so a domain's pipelines may build on another domain's raw
tables; within one number, domains go alphabetically. Every statement prints one line; the first
failure stops the run with one line naming `file:line` and Snowflake's message. For the local
target, a running daemon's stand-in is used; with none running, the stand-in is started here on
the same data dir for the duration of the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
import typer

from streamd.cli.common import ConfigOpt, load_config, one_line_errors
from streamd.cli.target import sql_client
from streamd.config.model import Config, embedded_path, sql_dirs
from streamd.errors import ConfigError, SqlError, StreamdError
from streamd.snowflake.sql_api import SqlApiClient
from streamd.sqlsplit import SplitError, split_statements

_NUMBER = re.compile(r"^(\d+)_")
STATEMENT_TIMEOUT_S = 300
"""Per statement: DDL is quick, but creating a dynamic table runs its initial refresh."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One statement to apply, with where it comes from."""

    path: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        """`sql/<domain>/<file>:<line>`."""
        return f"sql/{self.path.parent.name}/{self.path.name}:{self.line}"


def available_domains(root: Path | None = None) -> list[str]:
    """The domain folders of `sql/`, sorted."""
    if root is None:
        return [p.name for p in sql_dirs()]
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def plan(domains: Sequence[str] = (), root: Path | None = None) -> list[Planned]:
    """Every statement of the chosen domains (all when empty), in apply order."""
    base = root if root is not None else embedded_path("sql")
    known = available_domains(base)
    unknown = [d for d in domains if d not in known]
    if unknown:
        raise ConfigError(
            f"--domain {', '.join(unknown)}: no such sql/ folder; choose from {', '.join(known)}"
        )
    chosen = list(dict.fromkeys(domains)) or known
    files = [f for d in chosen for f in (base / d).glob("*.sql")]
    files.sort(key=lambda f: (_number(f), f.parent.name, f.name))
    planned: list[Planned] = []
    for path in files:
        try:
            statements = split_statements(path.read_text(encoding="utf-8"))
        except SplitError as err:
            raise SqlError(f"sql/{path.parent.name}/{path.name}: {err}") from None
        planned.extend(Planned(path, s.line, s.text) for s in statements)
    return planned


def _number(path: Path) -> int:
    match = _NUMBER.match(path.name)
    return int(match[1]) if match else 0


def preview(text: str, limit: int = 72) -> str:
    """The statement on one line, shortened."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


async def apply(
    config: Config,
    planned: Sequence[Planned],
    echo: Callable[[str], None],
    warehouse: str | None = None,
) -> int:
    """Run the statements on the configured target; returns how many ran (see `run_planned`)."""
    async with sql_client(config, STATEMENT_TIMEOUT_S + 30) as client:
        return await run_planned(
            client, planned, echo, role=config.target.role, warehouse=warehouse
        )


async def run_planned(
    client: SqlApiClient,
    planned: Sequence[Planned],
    echo: Callable[[str], None],
    *,
    role: str | None = None,
    warehouse: str | None = None,
) -> int:
    """Run the statements in order, one line each; raises SqlError naming file:line on failure."""
    for item in planned:
        try:
            result = await client.execute(
                item.text, role=role, warehouse=warehouse, timeout_s=STATEMENT_TIMEOUT_S
            )
        except StreamdError as err:
            raise SqlError(f"{item.where}: {err}") from None
        status = result.rows[0][0] if result.rows and result.rows[0] else None
        outcome = status if result.columns == ["status"] and status else "ok"
        echo(f"{item.where}  {preview(item.text)}  {outcome}")
    return len(planned)


def command(
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="sql/ folder to apply (repeatable); all when omitted."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would run.")] = False,
    warehouse: Annotated[
        str | None,
        typer.Option(help="Warehouse for the statements; the user's default when omitted."),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Apply the shipped sql/ pipelines to the target through the SQL API, in order."""
    cfg = load_config(config)
    with one_line_errors():
        planned = plan(domain or ())
        if dry_run:
            for item in planned:
                typer.echo(f"{item.where}  {preview(item.text)}")
            typer.echo(f"{len(planned)} statements (dry run: nothing sent)")
            return
        count = anyio.run(apply, cfg, planned, typer.echo, warehouse)
    typer.echo(f"{count} statements applied")
