"""The `streamd` command line: parse flags, load config, call in; every failure is one line."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import orjson
import typer

from streamd.config.model import Config, load
from streamd.errors import ConfigError, StreamdError
from streamd.install import needs_full_install
from streamd.logs import configure

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
config_app = typer.Typer(no_args_is_help=True, help="Check configuration.")
standin_app = typer.Typer(no_args_is_help=True, help="The local Snowflake stand-in.")
app.add_typer(config_app, name="config")
app.add_typer(standin_app, name="standin")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config; the embedded local default when omitted."),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"streamd: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn our errors (even inside task-group exception groups) into one line and an exit code."""
    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(problem, err=True)
        raise typer.Exit(2) from None
    except StreamdError as exc:
        _fail(str(exc))
    except BaseExceptionGroup as group:
        leaf = _first_streamd_error(group)
        if leaf is None:
            raise
        if isinstance(leaf, ConfigError):
            for problem in leaf.problems:
                typer.echo(problem, err=True)
            raise typer.Exit(2) from None
        _fail(str(leaf))


def _first_streamd_error(group: BaseExceptionGroup[Any]) -> StreamdError | None:
    for exc in group.exceptions:
        if isinstance(exc, StreamdError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_streamd_error(exc)
            if found is not None:
                return found
    return None


def _load(path: Path | None) -> Config:
    with _one_line_errors():
        return load(path)


@app.command()
def run(
    config: ConfigOpt = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop (and drain) after this many seconds.")
    ] = None,
    log_format: Annotated[
        str | None, typer.Option(help="json or console (default: config log.format).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning or error.")] = None,
) -> None:
    """Run the daemon until SIGINT/SIGTERM (or --duration), then drain and exit."""
    from streamd.daemon import eventloop
    from streamd.daemon.run import Daemon

    cfg = _load(config)
    configure(log_format or cfg.log.format, log_level or cfg.log.level)  # type: ignore[arg-type]
    with _one_line_errors():
        summary = eventloop.run(lambda: Daemon(cfg).run(duration=duration), cfg.event_loop)
    if summary.uncommitted:
        _fail(
            f"{summary.uncommitted} rows were produced but not committed before the drain deadline; "
            "raise delivery.drain_timeout_s or check `streamd inspect`"
        )


@app.command()
def keygen(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for <name>.p8 and <name>.pub (created 0700).")
    ] = Path("."),
    user: Annotated[
        str, typer.Option("--user", help="Snowflake user named in the ALTER USER statement.")
    ] = "STREAMD",
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env",
            help="Encrypt the private key (AES-256-CBC) with the passphrase in this variable.",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="File name stem.")] = "rsa_key",
    force: Annotated[bool, typer.Option("--force", help="Replace existing key files.")] = False,
) -> None:
    """Write an RSA key pair (PKCS#8; 0600/0644) and print ALTER USER … SET RSA_PUBLIC_KEY."""
    import os

    from streamd.cli.keygen import generate

    passphrase = None
    if passphrase_env is not None:  # from the environment, never argv (ps, shell history)
        value = os.environ.get(passphrase_env, "")
        if not value:
            _fail(f"--passphrase-env: {passphrase_env} is not set or empty; export it first", 2)
        passphrase = value.encode()
    with _one_line_errors():
        files = generate(out, name, passphrase, user=user, force=force)
    typer.echo(files.describe())


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate a config file; print every problem as PATH:LINE: key: message and exit 2."""
    cfg = _load(config)
    typer.echo(
        f"ok: {len(cfg.sources)} sources, {len(cfg.target_tables())} tables, target {cfg.target.kind}"
    )


@app.command()
def inspect(
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Print the raw status JSON.")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Show the running daemon's sources, lanes, spools, channels and reconciler findings."""
    import shutil
    import time

    from streamd.cli.inspect import fetch_status, render

    cfg = _load(config)
    while True:
        with _one_line_errors():
            status = fetch_status(cfg)
        if json:
            typer.echo(orjson.dumps(status, option=orjson.OPT_INDENT_2).decode())
        else:
            screen = render(status, width=shutil.get_terminal_size((80, 24)).columns)
            # Home + clear, so the view refreshes in place instead of scrolling.
            typer.echo(("\x1b[H\x1b[2J" if watch else "") + screen)
        if not watch:
            return
        time.sleep(interval)


@app.command()
def sql(
    statement: Annotated[str, typer.Argument(help="One SQL statement, Snowflake dialect.")],
    config: ConfigOpt = None,
    json: Annotated[bool, typer.Option("--json", help="Print rows as JSON objects.")] = False,
) -> None:
    """Run a statement against the configured target and print the rows."""
    from streamd.cli.sql import run_statement

    cfg = _load(config)
    with _one_line_errors():
        columns, rows = anyio.run(run_statement, cfg, statement)
    if json:
        typer.echo(
            orjson.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str).decode()
        )
        return
    typer.echo("\t".join(columns))
    for row in rows:
        typer.echo("\t".join("NULL" if v is None else str(v) for v in row))


@app.command()
def backfill(
    paths: Annotated[list[Path], typer.Argument(help="NDJSON or JSON-array files, .gz or not.")],
    table: Annotated[str, typer.Option("--table", help="Target table DATABASE.SCHEMA.TABLE.")],
    config: ConfigOpt = None,
) -> None:
    """Load existing files into a table through classic Snowpipe (idempotent: re-runs skip)."""
    cfg = _load(config)
    with _one_line_errors():
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


@app.command()
def setup(
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
    from streamd.cli.setup import apply, plan, preview

    cfg = _load(config)
    with _one_line_errors():
        planned = plan(domain or ())
        if dry_run:
            for item in planned:
                typer.echo(f"{item.where}  {preview(item.text)}")
            typer.echo(f"{len(planned)} statements (dry run: nothing sent)")
            return
        count = anyio.run(apply, cfg, planned, typer.echo, warehouse)
    typer.echo(f"{count} statements applied")


@standin_app.command("serve")
def standin_serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 0,
    data_dir: Annotated[Path, typer.Option(help="Where the DuckDB files live.")] = Path(
        ".streamd/standin"
    ),
    commit_delay_ms: Annotated[float, typer.Option(help="Delay before appends commit.")] = 1000,
    public_key: Annotated[
        Path | None, typer.Option(help="PEM public key; when given, JWTs are verified.")
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(help="Fault SPEC, e.g. 'append:429:p=0.05,status:500:every=20' (see docs)."),
    ] = None,
    no_rate_limits: Annotated[
        bool, typer.Option("--no-rate-limits", help="Do not answer 429 over 10 req/s or 20 MB/s.")
    ] = False,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls", help="Serve HTTPS with a throwaway CA (the official SDK needs HTTPS)."
        ),
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option(help="Your own PEM certificate chain (implies --tls).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="The PEM key of --tls-cert.")] = None,
    task_minute_s: Annotated[
        float,
        typer.Option(help="Seconds a minute of task schedules and target lags lasts (demo: 1)."),
    ] = 60.0,
    timing_log: Annotated[
        Path | None,
        typer.Option(help="Write one JSON line of server times per appended batch (diagnostics)."),
    ] = None,
) -> None:
    """Serve the Snowflake stand-in on its own, for other clients."""
    from streamd.config.model import sql_dirs

    with _one_line_errors(), needs_full_install("streamd standin serve"):
        from streamd.standin.faults import FaultSpecError, parse_fault_spec
        from streamd.standin.server import StandinSettings, serve

    try:
        plan = parse_fault_spec(faults) if faults else None
    except FaultSpecError as err:
        _fail(f"--faults: {err}", 2)
    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together: give both, or neither", 2)
    configure("auto", "info")
    settings = StandinSettings(
        faults=plan,
        enforce_rate_limits=not no_rate_limits,
        host=host,
        port=port,
        data_dir=data_dir,
        sql_dirs=sql_dirs(),
        commit_delay_s=commit_delay_ms / 1000,
        public_key_pem=public_key.read_bytes() if public_key else None,
        tls=tls or tls_cert is not None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        task_minute_s=task_minute_s,
        timing_log=timing_log,
    )

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            standin = await tg.start(serve, settings)
            typer.echo(f"stand-in listening on {standin.url}", err=True)
            if standin.ca_file is not None:
                # What the official SDK (its Rust core reads SSL_CERT_FILE) and curl must trust.
                typer.echo(f"stand-in CA: SSL_CERT_FILE={standin.ca_file.resolve()}", err=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()

    with _one_line_errors():
        anyio.run(main)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


@config_app.command("example")
def config_example() -> None:
    """Print a config file documenting every key (the source of config/streamd.example.toml)."""
    from streamd.config.example import render_example

    typer.echo(render_example(), nl=False)
