"""Statement text helpers: the top-level `AS` of a CREATE header."""

from __future__ import annotations

from streamd.standin.sql.engine import split_top_level_as


def test_top_level_as_skips_aliases_in_parentheses() -> None:
    header, body = split_top_level_as(
        "CREATE TASK t WHEN SYSTEM$STREAM_HAS_DATA('s') AS SELECT a AS b FROM (SELECT 1 AS a)"
    ) or ("", "")
    assert header.strip().endswith("SYSTEM$STREAM_HAS_DATA('s')")
    assert body == "SELECT a AS b FROM (SELECT 1 AS a)"
    assert split_top_level_as("CREATE TASK t SCHEDULE = '1 minute'") is None
