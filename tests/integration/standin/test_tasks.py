"""Tasks on the stand-in: schedules, WHEN, AFTER graphs, suspend/resume, failures, TASK_HISTORY."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamd.errors import SqlError
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin
from tests.conftest import StandinFactory
from tests.helpers import eventually
from tests.integration.standin.sql_client import rows, script, sql_client

SETUP = """
CREATE DATABASE D;
CREATE SCHEMA D.S;
CREATE TABLE D.S.RAW (ID NUMBER, V NUMBER);
CREATE TABLE D.S.OUT (ID NUMBER, V NUMBER);
CREATE TABLE D.S.AGG (N NUMBER);
CREATE STREAM D.S.RAW_ST ON TABLE D.S.RAW;
"""
HISTORY = (
    "SELECT NAME, STATE, ERROR_CODE, ERROR_MESSAGE, SCHEDULED_TIME, COMPLETED_TIME, "
    "SCHEDULED_FROM FROM TABLE(D.INFORMATION_SCHEMA.TASK_HISTORY(TASK_NAME => '{name}')) "
    "ORDER BY SCHEDULED_TIME"
)


async def _until(c: SqlApiClient, statement: str, check: Callable[[list[Any]], object]) -> list:
    """The rows of `statement` once `check(rows)` holds (tasks run on their own clock)."""
    found: list[Any] = await eventually(
        lambda: rows(c, statement), check, interval=0.2, what=statement
    )
    return found


async def _periods_pass(c: SqlApiClient, n: int) -> None:
    """Return once the task scheduler has run a fresh '1 minute' task `n` times: at least n - 1
    schedule periods went by, in which any other started task would have run too."""
    await script(
        c,
        "CREATE TABLE D.S.TICKS (N NUMBER); "
        "CREATE TASK D.S.TICK SCHEDULE = '1 minute' AS INSERT INTO D.S.TICKS VALUES (1); "
        "ALTER TASK D.S.TICK RESUME",
    )
    await _until(c, "SELECT count(*) AS N FROM D.S.TICKS", lambda r: r[0]["N"] >= n)
    await script(c, "DROP TASK D.S.TICK; DROP TABLE D.S.TICKS")


@pytest.fixture
def fast(make_standin: StandinFactory) -> Standin:
    """A stand-in where a '1 minute' schedule lasts 0.5 s."""
    return make_standin(task_minute_s=0.5)


async def test_scheduled_task_consumes_stream_and_skips_when_empty(fast: Standin) -> None:
    async with sql_client(fast) as c:
        await script(c, SETUP)
        await c.execute(
            "CREATE TASK D.S.MOVE WAREHOUSE = W SCHEDULE = '1 minute' "
            "WHEN SYSTEM$STREAM_HAS_DATA('D.S.RAW_ST') "
            "AS INSERT INTO D.S.OUT SELECT ID, V FROM D.S.RAW_ST WHERE METADATA$ACTION = 'INSERT'"
        )
        shown = await rows(c, "SHOW TASKS IN DATABASE D")
        assert [(t["name"], t["state"], t["schedule"]) for t in shown] == [
            ("MOVE", "suspended", "1 minute")
        ]
        await c.execute("INSERT INTO D.S.RAW VALUES (1, 10), (2, 20)")
        await c.execute("ALTER TASK D.S.MOVE RESUME")
        history = HISTORY.format(name="MOVE")
        runs = await _until(
            c,
            history,
            lambda r: (
                any(x["STATE"] == "SKIPPED" for x in r)
                and any(x["STATE"] == "SUCCEEDED" for x in r)
            ),
        )
        runs = [x for x in runs if x["STATE"] != "SCHEDULED"]
        assert runs[0]["STATE"] == "SUCCEEDED"  # the first run had data
        assert all(x["SCHEDULED_FROM"] == "SCHEDULE" for x in runs)
        assert all(x["COMPLETED_TIME"] >= x["SCHEDULED_TIME"] for x in runs)
        assert await rows(c, "SELECT sum(V) AS S, count(*) AS N FROM D.S.OUT") == [
            {"S": 30, "N": 2}
        ]
        scheduled = history.replace("ORDER BY", "WHERE STATE = 'SCHEDULED' ORDER BY")
        upcoming = await _until(c, scheduled, lambda r: len(r) == 1)  # the next run (§5.5)
        assert upcoming[0]["COMPLETED_TIME"] is None
        await c.execute("ALTER TASK D.S.MOVE SUSPEND")
        assert await rows(c, scheduled) == []
        shown = await rows(c, "SHOW TASKS LIKE 'MOV%' IN SCHEMA D.S")
        assert shown[0]["state"] == "suspended"
        assert shown[0]["last_suspended_reason"] == "USER_SUSPENDED"
        count = len(await rows(c, history))
        await c.execute("INSERT INTO D.S.RAW VALUES (3, 30)")
        await _periods_pass(c, 4)  # three schedule periods while suspended
        assert len(await rows(c, history)) == count
        assert await rows(c, "SELECT count(*) AS N FROM D.S.OUT") == [{"N": 2}]


async def test_after_graph_runs_children_and_failures_are_recorded(fast: Standin) -> None:
    async with sql_client(fast) as c:
        await script(c, SETUP)
        await script(
            c,
            """
            CREATE TASK D.S.ROOT SCHEDULE = '1 minute' AS
              INSERT INTO D.S.OUT SELECT ID, V FROM D.S.RAW_ST;
            CREATE TASK D.S.CHILD AFTER D.S.ROOT AS
              BEGIN
                DELETE FROM D.S.AGG;
                INSERT INTO D.S.AGG SELECT count(*) FROM D.S.OUT;
              END;
            CREATE TASK D.S.BAD AFTER D.S.ROOT AS INSERT INTO D.S.NOPE VALUES (1);
            ALTER TASK D.S.CHILD RESUME;
            ALTER TASK D.S.BAD RESUME;
            """,
        )
        await c.execute("INSERT INTO D.S.RAW VALUES (1, 1), (2, 2), (3, 3)")
        await c.execute("EXECUTE TASK D.S.ROOT")  # runs although the root is suspended
        assert await rows(c, "SELECT N FROM D.S.AGG") == [{"N": 3}]
        bad = await rows(c, HISTORY.format(name="BAD"))
        assert [(r["STATE"], r["ERROR_CODE"]) for r in bad] == [("FAILED", 2003)]
        assert "NOPE" in bad[0]["ERROR_MESSAGE"]
        child = await rows(c, HISTORY.format(name="CHILD"))
        assert [(r["STATE"], r["SCHEDULED_FROM"]) for r in child] == [("SUCCEEDED", "EXECUTE_TASK")]
        failed = await rows(
            c,
            "SELECT NAME FROM TABLE(D.INFORMATION_SCHEMA.TASK_HISTORY(ERROR_ONLY => TRUE))",
        )
        assert failed == [{"NAME": "BAD"}]
        shown = {t["name"]: t for t in await rows(c, "SHOW TASKS IN DATABASE D")}
        assert shown["CHILD"]["predecessors"] == '["D.S.ROOT"]'
        assert shown["ROOT"]["schedule"] == "1 minute"


async def test_task_statements_are_checked(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        with pytest.raises(SqlError) as err:
            await c.execute("CREATE TASK D.S.T SCHEDULE = 'every tuesday' AS SELECT 1")
        assert err.value.code == "001003"
        with pytest.raises(SqlError) as err:
            await c.execute("ALTER TASK D.S.MISSING RESUME")
        assert err.value.code == "002003"
        await c.execute("CREATE TASK D.S.T SCHEDULE = 'USING CRON 0 9 * * MON-FRI UTC' AS SELECT 1")
        await c.execute("DROP TASK D.S.T")
        assert await rows(c, "SHOW TASKS IN DATABASE D") == []


async def test_task_history_takes_the_reconcilers_time_range(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(c, SETUP)
        await c.execute("CREATE TASK D.S.ONE SCHEDULE = '5 minute' AS DELETE FROM D.S.AGG")
        await c.execute("EXECUTE TASK D.S.ONE")
        await c.execute("EXECUTE TASK D.S.ONE")
        recent = (
            "SELECT NAME, DATABASE_NAME, SCHEMA_NAME, STATE FROM TABLE(D.INFORMATION_SCHEMA."
            "TASK_HISTORY(SCHEDULED_TIME_RANGE_START=>DATEADD('hour', -{h}, CURRENT_TIMESTAMP()), "
            "RESULT_LIMIT=>{n}))"
        )
        assert (
            await rows(c, recent.format(h=2, n=10000))
            == [{"NAME": "ONE", "DATABASE_NAME": "D", "SCHEMA_NAME": "S", "STATE": "SUCCEEDED"}] * 2
        )
        assert len(await rows(c, recent.format(h=2, n=1))) == 1
        future = recent.replace("-{h}", "{h}").format(h=1, n=10)
        assert await rows(c, future) == []


async def test_task_is_auto_suspended_after_consecutive_failures(fast: Standin) -> None:
    async with sql_client(fast) as c:
        await script(c, SETUP)
        await script(
            c,
            "CREATE TASK D.S.BROKEN SCHEDULE = '1 minute' SUSPEND_TASK_AFTER_NUM_FAILURES = 2 "
            "AS INSERT INTO D.S.OUT SELECT ID, V / 0 FROM D.S.MISSING; "
            "ALTER TASK D.S.BROKEN RESUME",
        )
        history = HISTORY.format(name="BROKEN")
        runs = await _until(
            c, history, lambda r: any(x["STATE"] == "FAILED_AND_AUTO_SUSPENDED" for x in r)
        )
        assert [x["STATE"] for x in runs] == ["FAILED", "FAILED_AND_AUTO_SUSPENDED"]
        shown = (await rows(c, "SHOW TASKS LIKE 'BROKEN' IN DATABASE D"))[0]
        assert (shown["state"], shown["last_suspended_reason"]) == (
            "suspended",
            "SUSPENDED_DUE_TO_ERRORS",
        )
        await _periods_pass(c, 4)  # three periods: no further runs while suspended
        assert len(await rows(c, history)) == 2


async def test_streams_and_tasks_survive_a_restart(make_standin: StandinFactory) -> None:
    first = make_standin(task_minute_s=600.0)  # nothing runs on its own before the restart
    async with sql_client(first) as c:
        await script(c, SETUP)
        await script(
            c,
            "INSERT INTO D.S.RAW VALUES (1, 1), (2, 2); "
            "CREATE TASK D.S.MOVE SCHEDULE = '1 minute' WHEN SYSTEM$STREAM_HAS_DATA('D.S.RAW_ST') "
            "AS INSERT INTO D.S.OUT SELECT ID, V FROM D.S.RAW_ST; ALTER TASK D.S.MOVE RESUME",
        )
    make_standin.stop(first)
    second = make_standin(task_minute_s=0.5)
    async with sql_client(second) as c:
        # The started task runs on the new process's clock and consumes what was pending.
        await _until(c, "SELECT count(*) AS N FROM D.S.OUT", lambda r: r == [{"N": 2}])
        assert await rows(c, "SELECT count(*) AS N FROM D.S.RAW_ST") == [{"N": 0}]
        shown = await rows(c, "SHOW TASKS IN DATABASE D")
        assert [t["state"] for t in shown] == ["started"]


async def test_alter_task_changes_body_condition_schedule_and_graph(standin: Standin) -> None:
    async with sql_client(standin) as c:
        await script(
            c,
            SETUP + "CREATE TASK D.S.A SCHEDULE = '1 minute' AS DELETE FROM D.S.AGG; "
            "CREATE TASK D.S.B SCHEDULE = '5 minute' AS DELETE FROM D.S.AGG",
        )
        await script(
            c,
            "ALTER TASK D.S.A SET SCHEDULE = 'USING CRON 0 * * * * UTC' COMMENT = 'hourly'; "
            "ALTER TASK D.S.A MODIFY AS INSERT INTO D.S.AGG VALUES (7); "
            "ALTER TASK D.S.A MODIFY WHEN SYSTEM$STREAM_HAS_DATA('D.S.RAW_ST'); "
            "ALTER TASK D.S.B ADD AFTER D.S.A",
        )
        tasks = {t["name"]: t for t in await rows(c, "SHOW TASKS IN SCHEMA D.S")}
        a, b = tasks["A"], tasks["B"]
        assert (a["schedule"], a["comment"]) == ("USING CRON 0 * * * * UTC", "hourly")
        assert a["definition"] == "INSERT INTO D.S.AGG VALUES (7)"
        assert a["condition"] == "SYSTEM$STREAM_HAS_DATA('D.S.RAW_ST')"
        assert b["predecessors"] == '["D.S.A"]'
        await c.execute("EXECUTE TASK D.S.A")  # the stream is empty: skipped
        assert await rows(c, "SELECT count(*) AS N FROM D.S.AGG") == [{"N": 0}]
        await script(c, "ALTER TASK D.S.A REMOVE WHEN; ALTER TASK D.S.B REMOVE AFTER D.S.A")
        await c.execute("EXECUTE TASK D.S.A")
        assert await rows(c, "SELECT N FROM D.S.AGG") == [{"N": 7}]
        states = await rows(c, HISTORY.format(name="A"))
        assert [s["STATE"] for s in states] == ["SKIPPED", "SUCCEEDED"]
        assert (await rows(c, "SHOW TASKS LIKE 'B' IN SCHEMA D.S"))[0]["predecessors"] == "[]"
        with pytest.raises(SqlError) as err:
            await c.execute("ALTER TASK D.S.A SET SCHEDULE = 'soon'")
        assert err.value.code == "001003"
