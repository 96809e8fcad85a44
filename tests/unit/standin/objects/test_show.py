"""SHOW … LIKE patterns."""

from __future__ import annotations

from streamd.standin.objects.show import _like


def test_show_like_is_sql_like_case_insensitive() -> None:
    assert _like("RAW_STREAM", "raw%")
    assert _like("RAW_STREAM", "RAW_STREA_")
    assert not _like("RAW_STREAM", "RAW")
