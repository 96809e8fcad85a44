"""One-line failures: what every command prints and exits with when our errors reach it."""

from __future__ import annotations

import pytest
import typer

from streamd.cli.common import one_line_errors
from streamd.errors import ConfigError, SourceError


def test_config_error_prints_each_problem_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    problems = ["a.toml:3: delivery.max_rows: too small", "a.toml:9: log.level: unknown"]
    with pytest.raises(typer.Exit) as info, one_line_errors():
        raise ConfigError(problems[0], problems)
    assert info.value.exit_code == 2
    assert capsys.readouterr().err.splitlines() == problems


def test_streamd_error_is_one_prefixed_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info, one_line_errors():
        raise SourceError("mqtt: broker refused the connection; check host and port")
    assert info.value.exit_code == 1
    assert capsys.readouterr().err == (
        "streamd: mqtt: broker refused the connection; check host and port\n"
    )


def test_the_first_error_of_ours_in_nested_groups_is_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inner = ExceptionGroup("inner", [ValueError("not ours"), SourceError("ndjson: gone")])
    with pytest.raises(typer.Exit) as info, one_line_errors():
        raise ExceptionGroup("outer", [RuntimeError("also not ours"), inner])
    assert info.value.exit_code == 1
    assert capsys.readouterr().err == "streamd: ndjson: gone\n"


def test_config_error_inside_a_group_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as info, one_line_errors():
        raise ExceptionGroup("g", [ConfigError("a.toml:1: target.kind: bad")])
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "a.toml:1: target.kind: bad\n"


def test_a_group_without_our_errors_is_not_swallowed() -> None:
    with pytest.raises(ExceptionGroup), one_line_errors():
        raise ExceptionGroup("g", [RuntimeError("a bug")])
