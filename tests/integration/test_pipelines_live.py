"""The whole local story: `streamd setup` on the stand-in, then the daemon's generators stream rows
and the stand-in's own schedulers (tasks every '1 MINUTE', dynamic tables at their TARGET_LAG,
both sped up) carry them raw → streams → tasks → star schema and KPIs, customer changes → SCD1 /
SCD2 → CDC Iceberg and Parquet, and bronze → silver → gold. Checked by numbers once caught up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streamd.cli.setup import plan, run_planned
from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair
from streamd.snowflake.sql_api import SqlApiClient
from tests.conftest import MANUFACTURING_SQL, REPO, StandinFactory
from tests.helpers import eventually
from tests.integration.standin.sql_client import rows, sql_client

pytestmark = pytest.mark.slow

_KEY, _ = generate_key_pair()

CAUGHT_UP = """
SELECT
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW) AS SENSOR_RAW,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.ANALYTICS.FACT_SENSOR_READINGS) AS SENSOR_FACTS,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW) AS PRODUCTION_RAW,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.ANALYTICS.FACT_PRODUCTION) AS PRODUCTION_FACTS,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.RAW_DATA.QUALITY_DATA_RAW) AS QUALITY_RAW,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.ANALYTICS.FACT_QUALITY) AS QUALITY_FACTS,
  (SELECT SUM(UNITS_PRODUCED) FROM MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW) AS UNITS_RAW,
  (SELECT SUM(TOTAL_UNITS_PRODUCED) FROM MANUFACTURING_DEMO.AGGREGATION.AGG_PRODUCTION_METRICS)
    AS UNITS_KPI,
  (SELECT COUNT(*) FROM MANUFACTURING_DEMO.RAW_DATA.QUALITY_DATA_RAW WHERE NOT PASSED) AS FAILED_RAW,
  (SELECT SUM(FAILED_TESTS) FROM MANUFACTURING_DEMO.AGGREGATION.AGG_QUALITY_SUMMARY) AS FAILED_KPI,
  (SELECT COUNT(*) FROM RETAIL_DEMO.RAW_DATA.CUSTOMER_CHANGES_RAW) AS CHANGES_RAW,
  (SELECT COUNT(*) FROM RETAIL_DEMO.CURATED.CUSTOMERS_HISTORY) AS SCD2_ROWS,
  (SELECT COUNT(DISTINCT CUSTOMER_ID) FROM RETAIL_DEMO.RAW_DATA.CUSTOMER_CHANGES_RAW)
    AS CUSTOMERS_RAW,
  (SELECT COUNT(*) FROM RETAIL_DEMO.CURATED.CUSTOMERS) AS SCD1_ROWS,
  (SELECT COUNT(*) FROM RETAIL_DEMO.CURATED.CUSTOMERS_HISTORY WHERE IS_CURRENT) AS SCD2_CURRENT,
  (SELECT COUNT(*) FROM RETAIL_DEMO.CDC.CUSTOMERS_ICEBERG) AS ICEBERG_ROWS,
  (SELECT SUM(TOTAL_AMOUNT) FROM RETAIL_DEMO.RAW_DATA.POS_TRANSACTIONS_RAW) AS POS_AMOUNT,
  (SELECT SUM(REVENUE) FROM MEDALLION_DEMO.GOLD.DAILY_SALES_SUMMARY) AS GOLD_REVENUE,
  (SELECT COUNT(DISTINCT SESSION_ID) FROM RETAIL_DEMO.RAW_DATA.CLICKSTREAM_RAW) AS SESSIONS_RAW,
  (SELECT SUM(SESSIONS) FROM MEDALLION_DEMO.GOLD.CUSTOMER_BEHAVIOR_METRICS) AS SESSIONS_GOLD
"""


def _config(url: str, state: Path) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": url, "private_key": _KEY.decode()},
            "delivery": {"linger_ms": 20, "status_poll_ms": 50, "drain_timeout_s": 60},
            "admin": {"enabled": False},
            "log": {"level": "warning"},
            "sources": [
                {
                    "kind": "manufacturing",
                    "equipment_count": 3,
                    "line_count": 2,
                    "product_count": 2,
                    "sensor_interval_ms": 50,
                    "production_interval_ms": 100,
                    "quality_interval_ms": 100,
                },
                {
                    "kind": "retail",
                    "store_count": 2,
                    "web_count": 2,
                    "shop_count": 1,
                    "product_count": 20,
                    "customer_count": 15,
                    "pos_interval_ms": 100,
                    "click_interval_ms": 50,
                    "ecommerce_interval_ms": 100,
                    "customer_change_interval_ms": 50,
                },
            ],
        }
    )


def _caught_up(state: dict[str, Any]) -> bool:
    pairs = [
        ("SENSOR_RAW", "SENSOR_FACTS"),
        ("PRODUCTION_RAW", "PRODUCTION_FACTS"),
        ("QUALITY_RAW", "QUALITY_FACTS"),
        ("UNITS_RAW", "UNITS_KPI"),
        ("FAILED_RAW", "FAILED_KPI"),
        ("CHANGES_RAW", "SCD2_ROWS"),
        ("CUSTOMERS_RAW", "SCD1_ROWS"),
        ("CUSTOMERS_RAW", "SCD2_CURRENT"),
        ("CUSTOMERS_RAW", "ICEBERG_ROWS"),
        ("POS_AMOUNT", "GOLD_REVENUE"),
        ("SESSIONS_RAW", "SESSIONS_GOLD"),
    ]
    return all(state[a] == state[b] for a, b in pairs)


async def _wait_caught_up(client: SqlApiClient) -> dict[str, Any]:
    # The pipelines run on the stand-in's schedulers: nothing to wait on but their output.
    [state] = await eventually(
        lambda: rows(client, CAUGHT_UP),
        lambda found: _caught_up(found[0]),
        within=90,
        interval=0.5,
        what="every pipeline caught up",
    )
    return state


async def test_generated_rows_flow_through_every_pipeline(
    make_standin: StandinFactory, tmp_path: Path
) -> None:
    standin = make_standin(sql_dirs=(MANUFACTURING_SQL, REPO / "sql" / "retail"), task_minute_s=0.5)
    async with sql_client(standin) as c:
        await run_planned(c, plan(), lambda _line: None)
        summary = await Daemon(_config(standin.url, tmp_path / "state")).run(duration=4)
        assert summary.uncommitted == 0
        state = await _wait_caught_up(c)
        exports = await rows(c, "LIST @RETAIL_DEMO.CDC.CDC_EXPORT_STAGE/customers/")
        history = await rows(
            c,
            "SELECT COUNT(*) AS N FROM TABLE(RETAIL_DEMO.INFORMATION_SCHEMA.TASK_HISTORY("
            "TASK_NAME => 'TASK_CUSTOMERS_SCD1')) WHERE STATE = 'SUCCEEDED'",
        )
    assert _caught_up(state), state
    assert state["SENSOR_RAW"] > 20
    assert state["CHANGES_RAW"] > state["CUSTOMERS_RAW"] > 0
    assert state["POS_AMOUNT"] > Decimal(0)
    assert exports, "the Parquet CDC task wrote no file"
    assert history[0]["N"] >= 1
