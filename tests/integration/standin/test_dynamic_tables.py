"""Dynamic tables on the stand-in: refresh on TARGET_LAG, DOWNSTREAM, suspend, history, failures."""

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
CREATE TABLE D.S.SALES (SKU VARCHAR, QTY NUMBER);
INSERT INTO D.S.SALES VALUES ('a', 1), ('a', 2), ('b', 5);
"""
HISTORY = (
    "SELECT NAME, STATE, STATE_CODE, STATE_MESSAGE, REFRESH_TRIGGER, REFRESH_ACTION, STATISTICS "
    "FROM TABLE(D.INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => '{name}')) "
    "ORDER BY REFRESH_START_TIME"
)


async def _until(c: SqlApiClient, statement: str, check: Callable[[list[Any]], object]) -> list:
    """The rows of `statement` once `check(rows)` holds (refreshes run on their own clock)."""
    found: list[Any] = await eventually(
        lambda: rows(c, statement), check, interval=0.2, what=statement
    )
    return found


async def _periods_pass(c: SqlApiClient, n: int) -> None:
    """Return once the refresh scheduler has refreshed a fresh '1 minute' dynamic table `n` times
    on schedule: at least n - 1 target-lag periods went by, for every other table too."""
    await c.execute(
        "CREATE DYNAMIC TABLE D.S.WITNESS TARGET_LAG = '1 minute' WAREHOUSE = W "
        "AS SELECT count(*) AS N FROM D.S.SALES"
    )
    scheduled = HISTORY.format(name="WITNESS").replace(
        "ORDER BY", "WHERE REFRESH_TRIGGER = 'SCHEDULED' ORDER BY"
    )
    await _until(c, scheduled, lambda r: len(r) >= n)
    await c.execute("DROP DYNAMIC TABLE D.S.WITNESS")


@pytest.fixture
def fast(make_standin: StandinFactory) -> Standin:
    """A stand-in where a minute of target lag lasts 1 s."""
    return make_standin(task_minute_s=1.0)


async def test_refreshes_follow_target_lag_and_downstream(fast: Standin) -> None:
    async with sql_client(fast) as c:
        await script(c, SETUP)
        await script(
            c,
            """
            CREATE DYNAMIC TABLE D.S.BY_SKU TARGET_LAG = DOWNSTREAM WAREHOUSE = W
              AS SELECT SKU, sum(QTY) AS QTY FROM D.S.SALES GROUP BY SKU;
            CREATE OR REPLACE DYNAMIC TABLE D.S.TOTAL TARGET_LAG = '1 minute' WAREHOUSE = W
              AS SELECT sum(QTY) AS QTY, count(*) AS SKUS FROM D.S.BY_SKU;
            """,
        )
        assert await rows(c, "SELECT QTY, SKUS FROM D.S.TOTAL") == [{"QTY": 8, "SKUS": 2}]
        await c.execute("INSERT INTO D.S.SALES VALUES ('c', 10)")
        await _until(c, "SELECT QTY FROM D.S.TOTAL", lambda r: r == [{"QTY": 18}])
        assert await rows(c, "SELECT QTY FROM D.S.BY_SKU WHERE SKU = 'c'") == [{"QTY": 10}]
        history = await rows(c, HISTORY.format(name="D.S.TOTAL"))
        assert history[0]["REFRESH_TRIGGER"] == "CREATION"
        assert {h["REFRESH_TRIGGER"] for h in history[1:]} == {"SCHEDULED"}
        assert all(h["STATE"] == "SUCCEEDED" and h["REFRESH_ACTION"] == "FULL" for h in history)
        shown = {d["name"]: d for d in await rows(c, "SHOW DYNAMIC TABLES IN DATABASE D")}
        assert shown["TOTAL"]["target_lag"] == "1 minute"
        assert shown["BY_SKU"]["target_lag"] == "DOWNSTREAM"
        assert shown["TOTAL"]["scheduling_state"] == "RUNNING"
        assert shown["BY_SKU"]["rows"] == 3
        assert shown["TOTAL"]["data_timestamp"] is not None


async def test_suspend_manual_refresh_and_failure(fast: Standin) -> None:
    async with sql_client(fast) as c:
        await script(c, SETUP)
        await c.execute(
            "CREATE DYNAMIC TABLE D.S.T TARGET_LAG = '1 minute' WAREHOUSE = W "
            "AS SELECT SKU, QTY FROM D.S.SALES"
        )
        await c.execute("ALTER DYNAMIC TABLE D.S.T SUSPEND")
        await c.execute("INSERT INTO D.S.SALES VALUES ('z', 1)")
        await _periods_pass(c, 2)  # T's lag passed while it was suspended
        assert await rows(c, "SELECT count(*) AS N FROM D.S.T") == [{"N": 3}]
        info = await rows(
            c,
            "SELECT SCHEDULING_STATE, TARGET_LAG_SEC, TARGET_LAG_TYPE "
            "FROM TABLE(D.INFORMATION_SCHEMA.DYNAMIC_TABLES())",
        )
        assert info[0]["SCHEDULING_STATE"]["state"] == "SUSPENDED"
        assert info[0]["TARGET_LAG_SEC"] == 60
        assert info[0]["TARGET_LAG_TYPE"] == "USER_DEFINED"
        await c.execute("ALTER DYNAMIC TABLE D.S.T REFRESH")
        assert await rows(c, "SELECT count(*) AS N FROM D.S.T") == [{"N": 4}]
        await c.execute("ALTER DYNAMIC TABLE D.S.T RESUME")
        # Break the query's source: scheduled refreshes fail and say why; contents stay.
        await c.execute("DROP TABLE D.S.SALES")
        history = await _until(
            c, HISTORY.format(name="T"), lambda r: any(h["STATE"] == "FAILED" for h in r)
        )
        failed = next(h for h in history if h["STATE"] == "FAILED")
        assert failed["STATE_CODE"] == "002003"
        assert "SALES" in failed["STATE_MESSAGE"]
        assert await rows(c, "SELECT count(*) AS N FROM D.S.T") == [{"N": 4}]
        last = await rows(
            c,
            "SELECT LAST_COMPLETED_REFRESH_STATE AS S FROM TABLE(D.INFORMATION_SCHEMA.DYNAMIC_TABLES(NAME => 'D.S.T'))",
        )
        assert last == [{"S": "FAILED"}]
        with pytest.raises(SqlError):
            await c.execute("ALTER DYNAMIC TABLE D.S.T REFRESH")
