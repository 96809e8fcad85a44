"""The shipped CDC export (sql/cdc: stream → TASK_CDC_TO_PARQUET → COPY INTO @CDC_EXPORT_STAGE)
stops when its task is suspended: the next cycle reports the stopped export and the suspended
task; resuming the task clears both."""

from __future__ import annotations

import anyio
import pytest

from streamd.cli.setup import plan, run_planned
from streamd.snowflake.sql_api import SqlApiClient
from tests.conftest import REPO, StandinFactory

from .conftest import reconciler, sql_client

TASK = "RETAIL_DEMO.CDC.TASK_CDC_TO_PARQUET"
STAGE = "@RETAIL_DEMO.CDC.CDC_EXPORT_STAGE/customers/"
MAX_AGE_S = 3.0


async def _files(sql: SqlApiClient) -> int:
    return len((await sql.execute(f"LIST {STAGE}")).rows)


async def _exported(sql: SqlApiClient, more_than: int) -> int:
    """Wait for the export task (every 0.5 s here) to write a new file; how many there are."""
    with anyio.fail_after(60):
        while True:
            count = await _files(sql)
            if count > more_than:
                return count
            # The task runs on the stand-in's scheduler: nothing to wait on but its output.
            await anyio.sleep(0.2)


async def _customer(sql: SqlApiClient, cid: str) -> None:
    await sql.execute(
        "INSERT INTO RETAIL_DEMO.CURATED.CUSTOMERS (CUSTOMER_ID, NAME, EMAIL, CITY, TIER, UPDATED_AT) "
        f"VALUES ('{cid}', 'Ada', 'ada@example.com', 'Zurich', 'GOLD', CURRENT_TIMESTAMP())"
    )


@pytest.mark.slow
async def test_a_stopped_cdc_export_is_reported_and_clears_when_its_task_resumes(
    make_standin: StandinFactory,
) -> None:
    standin = make_standin(
        sql_dirs=(REPO / "sql" / "manufacturing", REPO / "sql" / "retail"), task_minute_s=0.5
    )
    async with sql_client(standin) as sql:
        await run_planned(sql, plan(["customers", "cdc"]), lambda _line: None)
        watcher = reconciler(
            sql,
            ["RETAIL_DEMO"],
            exports=[
                {
                    "stage": STAGE,
                    "max_age_s": MAX_AGE_S,
                    "stream": "RETAIL_DEMO.CDC.CUSTOMERS_PARQUET_STREAM",
                }
            ],
        )
        stopped, suspended = ("export", STAGE), ("task", TASK)

        await _customer(sql, "C1")
        files = await _exported(sql, 0)
        keys = {f.key for f in (await watcher.run_cycle()).findings}
        assert stopped not in keys
        assert suspended not in keys

        await sql.execute(f"ALTER TASK {TASK} SUSPEND")
        await _customer(sql, "C2")
        await anyio.sleep(MAX_AGE_S + 1.5)
        report = await watcher.run_cycle()
        found = {f.key: f for f in report.findings}
        assert found[stopped].severity == "warning"
        assert "has changes waiting" in found[stopped].message
        assert found[suspended].severity == "critical"
        assert watcher.health_reasons() == [f"task {TASK}: {found[suspended].message}"]

        await sql.execute(f"ALTER TASK {TASK} RESUME")
        await _exported(sql, files)
        keys = {f.key for f in (await watcher.run_cycle()).findings}
        assert stopped not in keys
        assert suspended not in keys
