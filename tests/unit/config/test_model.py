"""Config loading: defaults, secrets, and error lines that point at the TOML line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamd.config.example import render_example
from streamd.config.model import Config, embedded_path, load, parse
from streamd.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]


def _problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(text, path="streamd.toml")
    return info.value.problems


def test_embedded_default_is_local_manufacturing() -> None:
    """With no --config, streamd runs the stand-in and the synthetic manufacturing sources."""
    cfg = load(None)
    assert cfg.target.kind == "local"
    assert [s.kind for s in cfg.sources] == ["manufacturing"]
    assert "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW" in cfg.target_tables()
    assert embedded_path("local.toml").read_text() == (REPO / "config/local.toml").read_text()


def test_unknown_key_names_line_and_key() -> None:
    """An unknown key is rejected with its line number and dotted path."""
    text = "state_dir = 'x'\n\n[delivery]\nlinger_ms = 5\nlingr_ms = 10\n"
    assert _problems(text) == [
        "streamd.toml:5: delivery.lingr_ms: unknown key; remove it or check its spelling"
    ]


def test_every_problem_is_reported_with_its_line() -> None:
    """Several bad keys give one line each, in a source table too."""
    text = (
        "[delivery]\n"
        "max_bytes = 9000000\n"
        "\n"
        "[[sources]]\n"
        "kind = 'manufacturing'\n"
        "\n"
        "[[sources]]\n"
        "kind = 'manufacturing'\n"
        "name = 'second'\n"
        "equipment_count = -3\n"
    )
    problems = _problems(text)
    assert problems[0].startswith("streamd.toml:2: delivery.max_bytes: ")
    assert any(p.startswith("streamd.toml:10: sources[1].equipment_count: ") for p in problems)
    assert len(problems) == 2


def test_invalid_toml_names_line() -> None:
    """A TOML syntax error names the line."""
    problems = _problems("[target]\nkind = \n")
    assert problems[0].startswith("streamd.toml:2: invalid TOML")


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets may come from env:NAME or file:/path and never print."""
    monkeypatch.setenv("STREAMD_TEST_PW", "hunter2")
    key = tmp_path / "k.p8"
    key.write_text("-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    cfg = parse(
        f"[target]\nkind='snowflake'\nprivate_key='file:{key}'\nprivate_key_passphrase='env:STREAMD_TEST_PW'\n",
        path="x.toml",
    )
    assert cfg.target.private_key_passphrase is not None
    assert cfg.target.private_key_passphrase.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(cfg)
    assert "BEGIN" not in repr(cfg)


def test_missing_env_secret_is_one_line() -> None:
    """A secret pointing at an unset variable names the variable and the key."""
    problems = _problems("[target]\nprivate_key = 'env:STREAMD_SURELY_UNSET'\n")
    assert problems == [
        "streamd.toml:2: target.private_key: environment variable STREAMD_SURELY_UNSET is not set; "
        "export it or change target.private_key"
    ]


def test_duplicate_source_names_rejected() -> None:
    """Two sources with one name would share sequence numbers, so it is an error."""
    problems = _problems("[[sources]]\nkind='manufacturing'\n[[sources]]\nkind='manufacturing'\n")
    assert "rename manufacturing" in problems[0]


def test_example_file_is_generated_from_the_model() -> None:
    """config/streamd.example.toml documents every key and parses back to the defaults."""
    text = render_example()
    assert (REPO / "config/streamd.example.toml").read_text() == text
    cfg = parse(text, path="example")
    assert cfg.delivery == Config().delivery
    for key in (
        "channel_prefix",
        "linger_ms",
        "drain_timeout_s",
        "equipment_count",
        "commit_delay_ms",
    ):
        assert f"{key} = " in text


def test_spool_total_must_leave_each_lane_a_segment() -> None:
    """A total spool budget too small for one segment per lane is refused with the fix."""
    problems = _problems("spool_total_max_bytes = 1000000\n[[sources]]\nkind = 'manufacturing'\n")
    assert problems[0].startswith("streamd.toml:1: ")
    assert "each of 3 lanes" in problems[0]
    assert "spool.segment_bytes" in problems[0]


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key file other users can read is refused with the chmod fix."""
    key = tmp_path / "k.p8"
    key.write_text("x")
    key.chmod(0o644)
    problems = _problems(f"[target]\nprivate_key = 'file:{key}'\n")
    assert problems == [
        f"streamd.toml:2: target.private_key: {key} is readable by group/others (mode 0644); "
        f"run chmod 600 {key}"
    ]
