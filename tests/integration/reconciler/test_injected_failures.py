"""Injected failures on the stand-in each show up as the right finding in the next reconciler
cycle and clear when fixed: a task that errors, a suspended task, a stream left unconsumed past
its staleness, a dynamic table that is suspended or fails to refresh. Everything goes over HTTP
through the documented SHOW / INFORMATION_SCHEMA forms (§5)."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from streamd.errors import SqlError
from streamd.reconciler.loop import Reconciler
from streamd.reconciler.report import Finding
from streamd.snowflake.sql_api import SqlApiClient

from .conftest import reconciler

DB = "MANUFACTURING_DEMO"
S = f"{DB}.WATCH"


async def _setup(sql: SqlApiClient, *statements: str) -> None:
    for statement in (
        f"CREATE SCHEMA IF NOT EXISTS {S}",
        f"CREATE TABLE IF NOT EXISTS {S}.SRC (ID INT, V VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS {S}.OUT (ID INT, N INT)",
        *statements,
    ):
        await sql.execute(statement)


async def _findings(watcher: Reconciler) -> dict[tuple[str, str], Finding]:
    """One cycle's findings about objects (query failures would hide a missing feature: none allowed)."""
    report = await watcher.run_cycle()
    failed = [f for f in report.findings if f.failed_query]
    assert not failed, failed
    return {f.key: f for f in report.findings}


async def test_a_task_that_errors_is_reported_and_clears_after_a_good_run(
    sql: SqlApiClient,
) -> None:
    await _setup(
        sql,
        f"INSERT INTO {S}.SRC VALUES (1, 'not a number')",
        f"CREATE TASK {S}.T_LOAD WAREHOUSE = STREAMD_WH SCHEDULE = '60 MINUTE' "
        f"AS INSERT INTO {S}.OUT SELECT ID, CAST(V AS INT) FROM {S}.SRC",
        f"ALTER TASK {S}.T_LOAD RESUME",
    )
    watcher = reconciler(sql, [DB])
    assert ("task_failed", f"{S}.T_LOAD") not in await _findings(watcher)

    await sql.execute(f"EXECUTE TASK {S}.T_LOAD")  # the cast fails
    found = await _findings(watcher)
    failed = found["task_failed", f"{S}.T_LOAD"]
    assert failed.severity == "critical"
    assert "last run failed" in failed.message
    assert "EXECUTE TASK" in failed.action
    assert watcher.health_reasons() == [f"task_failed {S}.T_LOAD: {failed.message}"]

    await sql.execute(f"UPDATE {S}.SRC SET V = '7'")
    await sql.execute(f"EXECUTE TASK {S}.T_LOAD")
    assert ("task_failed", f"{S}.T_LOAD") not in await _findings(watcher)
    assert watcher.health_reasons() == []


async def test_a_suspended_task_is_reported_and_clears_on_resume_or_by_remediation(
    sql: SqlApiClient,
) -> None:
    task = f"{S}.T_KPI"
    await _setup(
        sql,
        f"CREATE TASK {task} WAREHOUSE = STREAMD_WH SCHEDULE = '60 MINUTE' "
        f"AS INSERT INTO {S}.OUT SELECT 1, 1",
        f"ALTER TASK {task} RESUME",
    )
    watcher = reconciler(sql, [DB])
    assert ("task", task) not in await _findings(watcher)

    await sql.execute(f"ALTER TASK {task} SUSPEND")
    suspended = (await _findings(watcher))["task", task]
    assert suspended.severity == "critical"
    assert "suspended" in suspended.message

    await sql.execute(f"ALTER TASK {task} RESUME")
    assert ("task", task) not in await _findings(watcher)

    # With remediation on, the reconciler resumes it itself; the next cycle sees it started.
    healer = reconciler(sql, [DB], remediation={"resume_suspended_tasks": True})
    await sql.execute(f"ALTER TASK {task} SUSPEND")
    assert ("task", task) in await _findings(healer)
    assert ("task", task) not in await _findings(healer)


@pytest.mark.slow
async def test_a_stream_left_unconsumed_goes_from_warning_to_stale_and_clears_when_recreated(
    sql: SqlApiClient,
) -> None:
    stream = f"{S}.SRC_STREAM"
    retention_days = 0.0001  # 8.6 s; the stand-in takes fractional days so staleness is testable
    await _setup(
        sql,
        f"CREATE STREAM {stream} ON TABLE {S}.SRC",
        f"CREATE TASK {S}.T_CONSUME WAREHOUSE = STREAMD_WH SCHEDULE = '60 MINUTE' "
        f"WHEN SYSTEM$STREAM_HAS_DATA('{stream}') AS INSERT INTO {S}.OUT SELECT ID, 0 FROM {stream}",
        f"INSERT INTO {S}.SRC VALUES (1, 'a')",
        f"ALTER TABLE {S}.SRC SET DATA_RETENTION_TIME_IN_DAYS = {retention_days} "
        f"MAX_DATA_EXTENSION_TIME_IN_DAYS = {retention_days}",
    )
    watcher = reconciler(sql, [DB], thresholds={"stream_stale_warning_s": 3600})
    near = (await _findings(watcher))["stream", stream]
    assert near.severity == "warning"
    assert "goes stale in" in near.message
    assert f"{S}.T_CONSUME" in near.action  # the task that reads it is named, and is the remedy
    assert [r.statement for r in near.remedies] == [f"EXECUTE TASK {S}.T_CONSUME"]

    await anyio.sleep(retention_days * 86_400 + 1)  # nobody consumes it
    stale = (await _findings(watcher))["stream", stream]
    assert stale.severity == "critical"
    assert "stale" in stale.message
    assert watcher.health_reasons()

    await sql.execute(
        f"ALTER TABLE {S}.SRC SET DATA_RETENTION_TIME_IN_DAYS = 1 MAX_DATA_EXTENSION_TIME_IN_DAYS = 14"
    )
    await sql.execute(f"CREATE OR REPLACE STREAM {stream} ON TABLE {S}.SRC")
    assert ("stream", stream) not in await _findings(watcher)


async def test_a_dynamic_table_suspended_or_failing_is_reported_and_clears(
    sql: SqlApiClient,
) -> None:
    dt = f"{S}.DT_TOTALS"
    await _setup(
        sql,
        f"INSERT INTO {S}.SRC VALUES (1, '5')",
        f"CREATE DYNAMIC TABLE {dt} TARGET_LAG = '60 minutes' WAREHOUSE = STREAMD_WH "
        f"AS SELECT ID, CAST(V AS INT) AS N FROM {S}.SRC",
    )
    watcher = reconciler(sql, [DB])
    assert not {k for k in await _findings(watcher) if k[1] == dt}

    await sql.execute(f"ALTER DYNAMIC TABLE {dt} SUSPEND")
    assert (await _findings(watcher))["dynamic_table", dt].severity == "critical"
    await sql.execute(f"ALTER DYNAMIC TABLE {dt} RESUME")
    assert ("dynamic_table", dt) not in await _findings(watcher)

    await sql.execute(f"INSERT INTO {S}.SRC VALUES (2, 'five')")
    # Snowflake fails the statement too; either way the refresh history records FAILED.
    with contextlib.suppress(SqlError):
        await sql.execute(f"ALTER DYNAMIC TABLE {dt} REFRESH")
    failed = (await _findings(watcher))["dynamic_table_refresh", dt]
    assert failed.severity == "critical"
    assert "last refresh failed" in failed.message

    await sql.execute(f"DELETE FROM {S}.SRC WHERE V = 'five'")
    await sql.execute(f"ALTER DYNAMIC TABLE {dt} REFRESH")
    assert ("dynamic_table_refresh", dt) not in await _findings(watcher)
