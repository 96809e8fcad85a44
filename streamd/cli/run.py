"""`streamd run`: the daemon in the foreground until a signal (or --duration), then the drain."""

from __future__ import annotations

from typing import Annotated

import typer

from streamd.cli.common import ConfigOpt, fail, load_config, one_line_errors
from streamd.logs import configure

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("json", "console")


def command(
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

    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        fail(f"--log-level {log_level}: choose one of {', '.join(LOG_LEVELS)}", 2)
    if log_format is not None and log_format not in LOG_FORMATS:
        fail(f"--log-format {log_format}: choose one of {', '.join(LOG_FORMATS)}", 2)
    cfg = load_config(config)
    configure(log_format or cfg.log.format, (log_level or cfg.log.level).lower())  # type: ignore[arg-type]
    with one_line_errors():
        summary = eventloop.run(lambda: Daemon(cfg).run(duration=duration), cfg.event_loop)
    if summary.uncommitted:
        fail(
            f"{summary.uncommitted} rows were produced but not committed before the drain deadline; "
            "raise delivery.drain_timeout_s or check `streamd inspect`"
        )
