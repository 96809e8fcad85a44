"""What every command shares: the `--config` option, loading it, and failing in one line.

Apart from `app.py` so that command modules can use it without importing the app that registers
them (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from streamd.config.model import Config, load
from streamd.errors import ConfigError, StreamdError

DEBUG = False
"""Set by `streamd --debug`: unexpected errors keep their traceback."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config; the embedded local default when omitted."),
]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print `streamd: <message>` to stderr and exit with `code`."""
    typer.echo(f"streamd: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn our errors (even inside task-group exception groups) into one line and an exit code.

    A ConfigError prints each of its problems as `PATH:LINE: key: message` and exits 2.
    """
    try:
        yield
    except ConfigError as exc:
        _config_problems(exc)
    except StreamdError as exc:
        fail(str(exc))
    except BaseExceptionGroup as group:
        leaf = _first_streamd_error(group)
        if leaf is None:
            raise
        if isinstance(leaf, ConfigError):
            _config_problems(leaf)
        fail(str(leaf))


def load_config(path: Path | None) -> Config:
    """The config at `path` (the embedded default when None); problems end the command."""
    with one_line_errors():
        return load(path)


def _config_problems(exc: ConfigError) -> NoReturn:
    for problem in exc.problems:
        typer.echo(problem, err=True)
    raise typer.Exit(2) from None


def _first_streamd_error(group: BaseExceptionGroup[Any]) -> StreamdError | None:
    for exc in group.exceptions:
        if isinstance(exc, StreamdError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first_streamd_error(exc)
            if found is not None:
                return found
    return None


def unexpected(exc: BaseException) -> str:
    """One line for an error streamd did not expect: what it was and how to see more."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.filename is not None:
        # The machine said no (a path, a permission, a full disk): the operator can fix that.
        return (
            f"{exc.filename}: {exc.strerror or exc}; check the path, its permissions and free "
            "space (--debug shows the traceback)"
        )
    first = str(exc).splitlines()[0] if str(exc) else ""
    what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return f"unexpected error: {what}; run again with --debug for the traceback, and report it"
