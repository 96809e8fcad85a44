"""Each check against documented SQL API result sets (§4.5, §5), through the real SqlApiClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from streamd.reconciler.checks import check_channels, check_streams, check_tasks
from streamd.reconciler.checks_tables import (
    check_dynamic_tables,
    check_exports,
    check_iceberg,
    check_pipes,
)
from streamd.reconciler.freshness import measure_freshness
from streamd.reconciler.report import Finding, Remedy
from streamd.snowflake.sql_api import SqlApiClient
from streamd.testing import ManualClock

from .conftest import (
    COPY_HISTORY,
    LIST_STAGE,
    REFRESH_HISTORY,
    SHOW_DYNAMIC_TABLES,
    SHOW_STREAMS,
    SHOW_TASKS,
    TASK_HISTORY,
    FakeSnowflake,
    context,
    http_date,
    ts,
)


def _by(findings: list[Finding]) -> dict[tuple[str, str], Finding]:
    return {f.key: f for f in findings}


def _stream(
    name: str, *, stale: str = "false", stale_after: float = 14 * 86_400
) -> list[str | None]:
    return [ts(-86_400), name, "DB", "PIPE", "SYSADMIN", "", "DB.RAW.T", "Table", None, "DELTA",
            stale, "DEFAULT", ts(stale_after), "N/A", "ROLE"]  # fmt: skip


def _task(
    name: str,
    *,
    state: str = "started",
    schedule: str | None = "1 MINUTE",
    definition: str = "INSERT INTO DB.PIPE.OUT SELECT 1",
    reason: str | None = None,
    created: float = -86_400,
) -> list[str | None]:
    return [ts(created), name, "01b-id", "DB", "PIPE", "SYSADMIN", "", "WH", schedule, "[]",
            state, definition, None, "false", None, None, None, "ROLE", None, reason]  # fmt: skip


def _run(
    name: str, state: str, at: float, code: str | None = None, msg: str | None = None
) -> list[str | None]:
    return [name, "DB", "PIPE", state, code, msg, ts(at - 5), ts(at)]


async def test_streams_stale_and_near_staleness(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    fake.answer(r"^SHOW STREAMS IN DATABASE DB$", SHOW_STREAMS, [
        _stream("GONE", stale="true"),
        _stream("SOON", stale_after=3600),
        _stream("PAST", stale_after=-60),
        _stream("FINE"),
    ])  # fmt: skip
    fake.answer(r"^SHOW TASKS IN DATABASE DB$", SHOW_TASKS, [
        _task("T_SOON", definition="INSERT INTO DB.PIPE.OUT SELECT * FROM DB.PIPE.SOON"),
        _task("T_OTHER", definition="INSERT INTO DB.PIPE.OUT SELECT * FROM DB.PIPE.SOONER"),
    ])  # fmt: skip
    found = _by(await check_streams(sql, clock, context()))
    assert set(found) == {
        ("stream", "DB.PIPE.GONE"),
        ("stream", "DB.PIPE.SOON"),
        ("stream", "DB.PIPE.PAST"),
    }
    assert found["stream", "DB.PIPE.GONE"].severity == "critical"
    assert "recreate" in found["stream", "DB.PIPE.GONE"].action
    soon = found["stream", "DB.PIPE.SOON"]
    assert soon.severity == "warning"
    assert "60 min" in soon.message
    # Only the task that reads SOON itself is named (not the one reading SOONER).
    assert soon.remedies == (Remedy("execute_task", "EXECUTE TASK DB.PIPE.T_SOON"),)
    past = found["stream", "DB.PIPE.PAST"]
    assert (past.severity, past.message) == (
        "critical",
        "stream is past its STALE_AFTER and may already be stale",
    )


async def test_a_failing_show_is_a_warning_and_other_databases_still_run(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    fake.fail(r"IN DATABASE BROKEN", message="Database 'BROKEN' does not exist or not authorized.")
    fake.answer(r"^SHOW STREAMS IN DATABASE DB$", SHOW_STREAMS, [_stream("GONE", stale="true")])
    found = _by(await check_streams(sql, clock, context(["BROKEN", "DB"])))
    failed = found["stream", "database BROKEN"]
    assert failed.severity == "warning"
    assert failed.failed_query
    assert "SHOW STREAMS IN DATABASE BROKEN" in failed.message
    assert "does not exist" in failed.message
    assert ("stream", "DB.PIPE.GONE") in found


async def test_tasks_suspended_failed_late_and_healthy(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    fake.answer(r"^SHOW TASKS IN DATABASE DB$", SHOW_TASKS, [
        _task("SUSPENDED", state="suspended", reason="SUSPENDED_DUE_TO_ERRORS"),
        _task("FAILING"),
        _task("RECOVERED"),
        _task("LATE", schedule="1 MINUTE"),
        _task("SKIPPING", schedule="1 MINUTE"),
        _task("CRON", schedule="USING CRON 0 * * * * UTC"),
        _task("NEW", created=-30),
        _task("CHILD", schedule=None),
    ])  # fmt: skip
    fake.answer(r"TASK_HISTORY", TASK_HISTORY, [
        _run("FAILING", "FAILED", -30, "100038", "Numeric value 'x' is not recognized"),
        _run("FAILING", "SUCCEEDED", -90),
        _run("RECOVERED", "SUCCEEDED", -20),
        _run("RECOVERED", "FAILED", -80, "100038", "boom"),
        _run("LATE", "SUCCEEDED", -300),
        _run("SKIPPING", "SKIPPED", -50),
        _run("SKIPPING", "SUCCEEDED", -3000),
    ])  # fmt: skip
    found = _by(await check_tasks(sql, clock, context()))
    assert set(found) == {
        ("task", "DB.PIPE.SUSPENDED"),
        ("task_failed", "DB.PIPE.FAILING"),
        ("task_late", "DB.PIPE.LATE"),
    }  # not CRON (no fixed interval), NEW (younger than 2 intervals), CHILD, SKIPPING, RECOVERED
    suspended = found["task", "DB.PIPE.SUSPENDED"]
    assert suspended.severity == "critical"
    assert "SUSPENDED_DUE_TO_ERRORS" in suspended.message
    assert suspended.remedies == (Remedy("resume_task", "ALTER TASK DB.PIPE.SUSPENDED RESUME"),)
    failing = found["task_failed", "DB.PIPE.FAILING"]
    assert failing.severity == "critical"
    assert "100038 Numeric value 'x' is not recognized" in failing.message
    assert found["task_late", "DB.PIPE.LATE"].severity == "warning"
    assert "5 min" in found["task_late", "DB.PIPE.LATE"].message
    history = next(s for s in fake.statements if "TASK_HISTORY" in s)
    assert "FROM TABLE(DB.INFORMATION_SCHEMA.TASK_HISTORY(" in history
    assert "SCHEDULED_TIME_RANGE_START=>DATEADD('hour', -2, CURRENT_TIMESTAMP())" in history
    assert "RESULT_LIMIT=>10000" in history


async def test_task_history_failing_still_reports_suspended(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    fake.answer(r"^SHOW TASKS", SHOW_TASKS, [_task("S", state="suspended"), _task("LATE")])
    fake.fail(r"TASK_HISTORY", code="002003", message="Insufficient privileges")
    found = _by(await check_tasks(sql, clock, context()))
    assert set(found) == {("task", "DB.PIPE.S"), ("task_history", "database DB")}
    assert found["task_history", "database DB"].failed_query


async def test_dynamic_tables_suspended_failing_and_behind(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    def dt(name: str, lag: str, state: str, data_age: float) -> list[str | None]:
        return [ts(-86_400), name, "DB", "GOLD", "10", "1000", "SYSADMIN", lag, "INCREMENTAL", None,
                "WH", "select 1", state, None, "false", ts(-data_age)]  # fmt: skip

    fake.answer(r"^SHOW DYNAMIC TABLES IN DATABASE DB$", SHOW_DYNAMIC_TABLES, [
        dt("PAUSED", "1 minute", "SUSPENDED", 10),
        dt("BROKEN", "1 minute", "RUNNING", 30),
        dt("DOWNSTREAM_FAIL", "DOWNSTREAM", "RUNNING", 10_000),
        dt("BEHIND", "1 minute", "RUNNING", 120),
        dt("WAY_BEHIND", "1 minute", "RUNNING", 600),
        dt("FINE", "5 minutes", "RUNNING", 200),
    ])  # fmt: skip
    fake.answer(r"DYNAMIC_TABLE_REFRESH_HISTORY", REFRESH_HISTORY, [
        ["BROKEN", "GOLD", "DB", "FAILED", "100038", "Numeric value 'abc' is not recognized", ts(-30), ts(-25)],
        ["BROKEN", "GOLD", "DB", "SUCCEEDED", None, None, ts(-90), ts(-85)],
        ["DOWNSTREAM_FAIL", "GOLD", "DB", "UPSTREAM_FAILED", None, "upstream BROKEN failed", ts(-30), ts(-25)],
        ["FINE", "GOLD", "DB", "FAILED", "1", "old failure", ts(-900), ts(-890)],
        ["FINE", "GOLD", "DB", "SUCCEEDED", None, None, ts(-200), ts(-195)],
        ["FINE", "GOLD", "DB", "EXECUTING", None, None, ts(-10), None],
    ])  # fmt: skip
    found = _by(await check_dynamic_tables(sql, clock, context()))
    assert set(found) == {
        ("dynamic_table", "DB.GOLD.PAUSED"),
        ("dynamic_table_refresh", "DB.GOLD.BROKEN"),
        ("dynamic_table_refresh", "DB.GOLD.DOWNSTREAM_FAIL"),
        ("dynamic_table_lag", "DB.GOLD.BEHIND"),
        ("dynamic_table_lag", "DB.GOLD.WAY_BEHIND"),
    }
    assert found["dynamic_table", "DB.GOLD.PAUSED"].severity == "critical"
    broken = found["dynamic_table_refresh", "DB.GOLD.BROKEN"]
    assert (broken.severity, "abc" in broken.message) == ("critical", True)
    assert found["dynamic_table_refresh", "DB.GOLD.DOWNSTREAM_FAIL"].severity == "warning"
    assert found["dynamic_table_lag", "DB.GOLD.BEHIND"].severity == "warning"
    assert found["dynamic_table_lag", "DB.GOLD.WAY_BEHIND"].severity == "critical"
    history = next(s for s in fake.statements if "REFRESH_HISTORY" in s)
    assert (
        "FROM TABLE(DB.INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(RESULT_LIMIT=>10000))"
        in history
    )


async def test_iceberg_snapshot_age(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake, tmp_path: Path
) -> None:
    def metadata(name: str, snapshot_ages: list[float]) -> str:
        path = tmp_path / f"{name}.metadata.json"
        snapshots = [
            {"snapshot-id": i, "timestamp-ms": int((clock.wall() - a) * 1000)}
            for i, a in enumerate(snapshot_ages)
        ]
        path.write_bytes(orjson.dumps({"format-version": 2, "snapshots": snapshots}))
        return path.as_uri()

    info = {
        "DB.CDC.OLD": {"metadataLocation": metadata("old", [7200, 3000]), "status": "success"},
        "DB.CDC.YOUNG": {"metadataLocation": metadata("young", [7200, 60]), "status": "success"},
        "DB.CDC.EMPTY": {"metadataLocation": metadata("empty", []), "status": "success"},
        "DB.CDC.REMOTE": {
            "metadataLocation": "s3://bucket/meta/v3.metadata.json",
            "status": "success",
        },
    }
    for table, answer in info.items():
        call = f"SYSTEM$GET_ICEBERG_TABLE_INFORMATION('{table}')"
        fake.answer(
            rf"^SELECT {call.replace('$', '[$]').replace('(', '[(]').replace(')', '[)]')}$",
            [(call, "text")],
            [[orjson.dumps(answer).decode()]],
        )
    ctx = context(iceberg=[{"table": t, "max_age_s": 900} for t in info])
    found = _by(await check_iceberg(sql, clock, ctx))
    assert found["iceberg", "DB.CDC.OLD"].severity == "critical"  # 3000 s > 3 × 900 s
    assert "50 min" in found["iceberg", "DB.CDC.OLD"].message
    assert ("iceberg", "DB.CDC.YOUNG") not in found
    assert found["iceberg", "DB.CDC.EMPTY"].message == "Iceberg table has no snapshot yet"
    assert found["iceberg", "DB.CDC.REMOTE"].severity == "info"


async def test_export_age_only_counts_while_the_stream_has_changes(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    def files(*ages: float) -> list[list[str | None]]:
        return [
            [f"cdc/data_{i}.parquet", "1024", "abc", http_date(-age)] for i, age in enumerate(ages)
        ]

    fake.answer(r"^LIST @DB\.CDC\.OUT/stopped/$", LIST_STAGE, files(4000, 1200))
    fake.answer(r"^LIST @DB\.CDC\.OUT/idle/$", LIST_STAGE, files(4000, 1200))
    fake.answer(r"^LIST @DB\.CDC\.OUT/fresh/$", LIST_STAGE, files(4000, 30))
    fake.answer(r"^LIST @DB\.CDC\.OUT/never/$", LIST_STAGE, [])
    has_data = "SYSTEM$STREAM_HAS_DATA('DB.CDC.{}')"
    for stream, value in (("BUSY", "true"), ("QUIET", "false")):
        call = has_data.format(stream)
        fake.answer(
            rf"^SELECT SYSTEM\$STREAM_HAS_DATA\('DB\.CDC\.{stream}'\)$",
            [(call, "boolean")],
            [[value]],
        )
    ctx = context(exports=[
        {"stage": "@DB.CDC.OUT/stopped/", "max_age_s": 900, "stream": "DB.CDC.BUSY"},
        {"stage": "@DB.CDC.OUT/idle/", "max_age_s": 900, "stream": "DB.CDC.QUIET"},
        {"stage": "@DB.CDC.OUT/fresh/", "max_age_s": 900, "stream": "DB.CDC.BUSY"},
        {"stage": "@DB.CDC.OUT/never/", "max_age_s": 900},
    ])  # fmt: skip
    found = _by(await check_exports(sql, clock, ctx))
    assert set(found) == {("export", "@DB.CDC.OUT/stopped/"), ("export", "@DB.CDC.OUT/never/")}
    stopped = found["export", "@DB.CDC.OUT/stopped/"]
    assert stopped.severity == "warning"
    assert "20 min old while DB.CDC.BUSY has changes waiting" in stopped.message
    assert found["export", "@DB.CDC.OUT/never/"].message == "no file exported yet"


async def test_pipes_state_backlog_errors_and_failed_loads(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    statuses = {
        "DB.RAW.STOPPED": {"executionState": "STOPPED_STAGE_DROPPED", "pendingFileCount": 0},
        "DB.RAW.BUSY": {"executionState": "RUNNING", "pendingFileCount": 500, "oldestPendingFilePath": "a.gz",
                        "error": "file format mismatch", "lastPipeErrorTimestamp": "2026-11-23T12:00:00Z"},
        "DB.RAW.OK": {"executionState": "RUNNING", "pendingFileCount": 0},
    }  # fmt: skip
    for pipe, status in statuses.items():
        call = f"SYSTEM$PIPE_STATUS('{pipe}')"
        fake.answer(
            rf"^SELECT SYSTEM\$PIPE_STATUS\('{pipe}'\)$",
            [(call, "text")],
            [[orjson.dumps(status).decode()]],
        )
    fake.answer(r"COPY_HISTORY\(TABLE_NAME=>'RAW\.ORDERS', START_TIME=>DATEADD\('hour', -1, CURRENT_TIMESTAMP\(\)\)\)", COPY_HISTORY, [
        ["a.gz", "Load failed", "3", "Numeric value 'x' is not recognized", ts(-100)],
        ["b.gz", "Loaded", "0", None, ts(-50)],
    ])  # fmt: skip
    ctx = context(pipes=[
        {"pipe": "DB.RAW.STOPPED"},
        {"pipe": "DB.RAW.BUSY"},
        {"pipe": "DB.RAW.OK", "table": "DB.RAW.ORDERS"},
    ])  # fmt: skip
    found = _by(await check_pipes(sql, clock, ctx))
    assert set(found) == {
        ("pipe", "DB.RAW.STOPPED"),
        ("pipe_backlog", "DB.RAW.BUSY"),
        ("pipe_error", "DB.RAW.BUSY"),
        ("pipe_loads", "DB.RAW.OK"),
    }
    assert found["pipe", "DB.RAW.STOPPED"].severity == "critical"
    assert "1 of 2 files" in found["pipe_loads", "DB.RAW.OK"].message
    assert "Numeric value 'x'" in found["pipe_loads", "DB.RAW.OK"].message


def _channel(**fields: Any) -> dict[str, Any]:
    base = {
        "table": "DB.RAW.T",
        "channel": "streamd_T",
        "open": True,
        "commit_lag_s": 0.5,
        "spool": {"rows_waiting": 10},
        "rows_error_count": 0,
        "last_error_message": None,
        "status_code": "SUCCESS",
    }
    return base | fields


async def test_channels_lag_errors_and_state(sql: SqlApiClient, clock: ManualClock) -> None:
    snapshot = [_channel()]
    ctx = context(
        thresholds={"channel_lag_s": 60, "channel_lag_rows": 1000, "channel_error_window_s": 600}
    )
    ctx.channels = lambda: snapshot
    assert await check_channels(sql, clock, ctx) == []

    snapshot[:] = [_channel(commit_lag_s=90.0, rows_error_count=5, last_error_message="bad type")]
    found = _by(await check_channels(sql, clock, ctx))
    lag = found["channel", "DB.RAW.T/streamd_T"]
    assert (lag.severity, lag.message) == ("warning", "commit lag 90 s, 10 rows not yet committed")
    errors = found["channel_errors", "DB.RAW.T/streamd_T"]
    assert "5 rows rejected" in errors.message
    assert "bad type" in errors.message

    snapshot[:] = [_channel(spool={"rows_waiting": 5000}, rows_error_count=5, open=False)]
    clock.advance(601)  # the error count stopped growing a whole window ago
    found = _by(await check_channels(sql, clock, ctx))
    assert found["channel", "DB.RAW.T/streamd_T"].severity == "critical"  # 5000 ≥ 3 × 1000
    assert ("channel_errors", "DB.RAW.T/streamd_T") not in found
    assert "not open" in found["channel_state", "DB.RAW.T/streamd_T"].message


async def test_freshness_measures_newest_produced_to_newest_visible(
    sql: SqlApiClient, clock: ManualClock, fake: FakeSnowflake
) -> None:
    newest = {"GOLD.FACTS": [[ts(-400)]], "GOLD.EMPTY": [[None]], "GOLD.FRESH": [[ts(-20)]]}
    for table, rows in newest.items():
        fake.answer(
            rf"^SELECT MAX\(EVENT_TIMESTAMP\) AS NEWEST FROM DB\.{table.replace('.', '[.]')}$",
            [("NEWEST", "timestamp_ntz")],
            rows,
        )
    fake.fail(r"FROM DB\.GOLD\.MISSING$", message="Object 'DB.GOLD.MISSING' does not exist")
    ctx = context(freshness=[
        {"source": "plant", "table": "DB.RAW.A", "final": "DB.GOLD.FACTS", "column": "EVENT_TIMESTAMP", "target_s": 300},
        {"source": "plant", "table": "DB.RAW.A", "final": "DB.GOLD.EMPTY", "column": "EVENT_TIMESTAMP", "target_s": 300},
        {"source": "shop", "table": "DB.RAW.B", "final": "DB.GOLD.FRESH", "column": "EVENT_TIMESTAMP", "target_s": 300},
        {"source": "idle", "table": "DB.RAW.C", "final": "DB.GOLD.FACTS", "column": "EVENT_TIMESTAMP", "target_s": 300},
        {"source": "plant", "table": "DB.RAW.A", "final": "DB.GOLD.MISSING", "column": "EVENT_TIMESTAMP", "target_s": 300},
    ])  # fmt: skip
    produced = {
        "DB.RAW.A": (clock.wall() - 600, clock.wall() - 10),
        "DB.RAW.B": (clock.wall() - 60, clock.wall()),
    }
    ctx.produced_at = produced.get
    samples, findings = await measure_freshness(sql, clock, ctx)
    lags = {(s.source, s.final): s.lag_s for s in samples}
    assert lags == {
        ("plant", "DB.GOLD.FACTS"): 390.0,
        ("plant", "DB.GOLD.EMPTY"): None,
        ("shop", "DB.GOLD.FRESH"): 20.0,
        ("idle", "DB.GOLD.FACTS"): None,
        ("plant", "DB.GOLD.MISSING"): None,
    }
    found = _by(findings)
    assert set(found) == {
        ("freshness", "plant: DB.GOLD.FACTS"),
        ("freshness", "plant: DB.GOLD.EMPTY"),
        ("freshness", "plant: DB.GOLD.MISSING"),
    }
    assert found["freshness", "plant: DB.GOLD.FACTS"].severity == "warning"
    assert (
        "trails the newest event of DB.RAW.A by 6 min (target 5 min)"
        in found["freshness", "plant: DB.GOLD.FACTS"].message
    )
    assert (
        "no rows in DB.GOLD.EMPTY yet, 10 min after the first event"
        in found["freshness", "plant: DB.GOLD.EMPTY"].message
    )
    assert found["freshness", "plant: DB.GOLD.MISSING"].failed_query
