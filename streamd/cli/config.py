"""`streamd config check` and `streamd config example`."""

from __future__ import annotations

import typer

from streamd.cli.common import ConfigOpt, load_config
from streamd.config.example import render_example

config_app = typer.Typer(no_args_is_help=True, help="Check configuration.")


@config_app.command("check")
def check(config: ConfigOpt = None) -> None:
    """Validate a config file; print every problem as PATH:LINE: key: message and exit 2."""
    cfg = load_config(config)
    typer.echo(
        f"ok: {len(cfg.sources)} sources, {len(cfg.target_tables())} tables, target {cfg.target.kind}"
    )


@config_app.command("example")
def example() -> None:
    """Print a config file documenting every key (the source of config/streamd.example.toml)."""
    typer.echo(render_example(), nl=False)
