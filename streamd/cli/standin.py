"""`streamd standin serve`, and the one place the CLI turns stand-in options into settings."""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import anyio
import typer

from streamd.cli.common import fail, one_line_errors
from streamd.config.model import sql_dirs
from streamd.config.sections import StandinConfig
from streamd.install import needs_full_install
from streamd.logs import configure

if TYPE_CHECKING:
    from streamd.standin.server import StandinSettings

standin_app = typer.Typer(no_args_is_help=True, help="The local Snowflake stand-in.")

_DEFAULTS = StandinConfig()


def standin_settings(
    section: StandinConfig, data_dir: Path, public_key_pem: bytes | None, *, port: int
) -> StandinSettings:
    """Settings for a stand-in serving the shipped `sql/` from `data_dir`, as `section` says."""
    with needs_full_install("the local stand-in"):
        from streamd.standin.server import StandinSettings

    return StandinSettings(
        data_dir=data_dir,
        sql_dirs=sql_dirs(),
        host=section.host,
        port=port,
        commit_delay_s=section.commit_delay_ms / 1000,
        public_key_pem=public_key_pem,
        task_minute_s=section.task_minute_s,
    )


@standin_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Listen address.")] = _DEFAULTS.host,
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = _DEFAULTS.port,
    data_dir: Annotated[Path, typer.Option(help="Where the DuckDB files live.")] = Path(
        ".streamd/standin"
    ),
    commit_delay_ms: Annotated[
        float, typer.Option(help="Delay before appends commit.")
    ] = _DEFAULTS.commit_delay_ms,
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
    ] = _DEFAULTS.task_minute_s,
    timing_log: Annotated[
        Path | None,
        typer.Option(help="Write one JSON line of server times per appended batch (diagnostics)."),
    ] = None,
) -> None:
    """Serve the Snowflake stand-in on its own, for other clients."""
    with one_line_errors(), needs_full_install("streamd standin serve"):
        from streamd.standin.faults import FaultSpecError, parse_fault_spec
        from streamd.standin.server import serve as serve_standin

    try:
        plan = parse_fault_spec(faults) if faults else None
    except FaultSpecError as err:
        fail(f"--faults: {err}", 2)
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together: give both, or neither", 2)
    configure("auto", "info")
    # The flags were checked by Typer as before; the section only carries them to the builder.
    section = StandinConfig.model_construct(
        host=host, commit_delay_ms=commit_delay_ms, task_minute_s=task_minute_s
    )
    settings = dataclasses.replace(
        standin_settings(
            section, data_dir, public_key.read_bytes() if public_key else None, port=port
        ),
        faults=plan,
        enforce_rate_limits=not no_rate_limits,
        tls=tls or tls_cert is not None,
        tls_cert=tls_cert,
        tls_key=tls_key,
        timing_log=timing_log,
    )

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            standin = await tg.start(serve_standin, settings)
            typer.echo(f"stand-in listening on {standin.url}", err=True)
            if standin.ca_file is not None:
                # What the official SDK (its Rust core reads SSL_CERT_FILE) and curl must trust.
                typer.echo(f"stand-in CA: SSL_CERT_FILE={standin.ca_file.resolve()}", err=True)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    tg.cancel_scope.cancel()

    with one_line_errors():
        anyio.run(main)
