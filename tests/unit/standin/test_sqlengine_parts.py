"""Pure pieces of the stand-in SQL engine: splitting, task headers and bodies, schedules, lags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamd.standin.objects.cron import ScheduleError, parse_schedule
from streamd.standin.objects.dynamic_tables import lag_seconds
from streamd.standin.objects.show import _like
from streamd.standin.objects.tasks import body_statements
from streamd.standin.sql.engine import SqlFailure, split_statements, split_top_level_as


def test_split_keeps_blocks_case_and_strings_whole() -> None:
    text = (
        "CREATE TASK t AS BEGIN INSERT INTO x SELECT CASE WHEN a THEN 1 END FROM s; "
        "DELETE FROM y; END; SELECT 'a;b'; -- c;\nBEGIN; SELECT 2; COMMIT;"
    )
    assert split_statements(text) == [
        "CREATE TASK t AS BEGIN INSERT INTO x SELECT CASE WHEN a THEN 1 END FROM s; "
        "DELETE FROM y; END",
        "SELECT 'a;b'",
        "-- c;\nBEGIN",
        "SELECT 2",
        "COMMIT",
    ]
    assert split_statements("  ;; -- only a comment\n") == []


def test_top_level_as_skips_aliases_in_parentheses() -> None:
    header, body = split_top_level_as(
        "CREATE TASK t WHEN SYSTEM$STREAM_HAS_DATA('s') AS SELECT a AS b FROM (SELECT 1 AS a)"
    ) or ("", "")
    assert header.strip().endswith("SYSTEM$STREAM_HAS_DATA('s')")
    assert body == "SELECT a AS b FROM (SELECT 1 AS a)"
    assert split_top_level_as("CREATE TASK t SCHEDULE = '1 minute'") is None


def test_task_body_block_is_split_into_statements() -> None:
    stmts = body_statements("BEGIN\n  DELETE FROM a;\n  INSERT INTO a SELECT 1;\nEND;")
    assert [s.text for s in stmts] == ["DELETE FROM a", "INSERT INTO a SELECT 1"]
    assert [s.text for s in body_statements("MERGE INTO a USING b ON a.x = b.x "
                                            "WHEN MATCHED THEN DELETE")] == [
        "MERGE INTO a USING b ON a.x = b.x WHEN MATCHED THEN DELETE"
    ]  # fmt: skip


def test_interval_and_cron_schedules() -> None:
    assert parse_schedule("1 MINUTE").interval_s == 60
    assert parse_schedule("90 seconds").interval_s == 90
    cron = parse_schedule("USING CRON */15 9-17 * * MON-FRI UTC")
    friday_evening = datetime(2026, 11, 20, 17, 50, tzinfo=UTC)  # a Friday
    assert cron.next_after(friday_evening) == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert cron.period_s(datetime(2026, 11, 23, 9, 1, tzinfo=UTC)) == 15 * 60
    la = parse_schedule("USING CRON 0 9 * * * America/Los_Angeles")
    assert la.next_after(datetime(2026, 7, 1, 0, 0, tzinfo=UTC)).hour == 16  # 09:00 PDT
    for bad in (
        "every tuesday",
        "0 MINUTE",
        "USING CRON 61 * * * * UTC",
        "USING CRON * * * * * Mars/X",
    ):
        with pytest.raises(ScheduleError):
            parse_schedule(bad)


def test_target_lag() -> None:
    assert lag_seconds("1 minute") == 60
    assert lag_seconds("2 hours") == 7200
    assert lag_seconds("downstream") is None
    with pytest.raises(SqlFailure):
        lag_seconds("soon")


def test_show_like_is_sql_like_case_insensitive() -> None:
    assert _like("RAW_STREAM", "raw%")
    assert _like("RAW_STREAM", "RAW_STREA_")
    assert not _like("RAW_STREAM", "RAW")
