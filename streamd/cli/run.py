"""`streamd run`: the daemon in the foreground until a signal (or --duration), then the drain."""

from __future__ import annotations

from typing import Annotated

import typer

from streamd.cli.common import ConfigOpt, fail, load_config, one_line_errors
from streamd.logs import configure


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

    cfg = load_config(config)
    configure(log_format or cfg.log.format, log_level or cfg.log.level)  # type: ignore[arg-type]
    with one_line_errors():
        summary = eventloop.run(lambda: Daemon(cfg).run(duration=duration), cfg.event_loop)
    if summary.uncommitted:
        fail(
            f"{summary.uncommitted} rows were produced but not committed before the drain deadline; "
            "raise delivery.drain_timeout_s or check `streamd inspect`"
        )
