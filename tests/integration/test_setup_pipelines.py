"""`streamd setup` on the stand-in, then rows through the shipped pipelines, checked by numbers.

Every sql/ domain is applied through the SQL API; rows go in with SQL INSERTs into the raw tables;
tasks run with EXECUTE TASK (the scheduler is slowed to an hour per minute so nothing runs on
its own) and dynamic tables refresh with ALTER DYNAMIC TABLE … REFRESH.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from streamd.cli.setup import plan, run_planned
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin
from tests.conftest import MANUFACTURING_SQL, REPO, StandinFactory
from tests.integration.standin.sql_client import rows, sql_client

pytestmark = pytest.mark.slow

RETAIL_SQL = REPO / "sql" / "retail"
MFG = "MANUFACTURING_DEMO"

SENSORS = [
    # id, minute, equipment, type, temperature, vibration, status, anomaly
    ("s1", "10:05", "EQ-0001", "CNC_MACHINE", 40.0, 2.0, "RUNNING", False),
    ("s2", "10:20", "EQ-0001", "CNC_MACHINE", 60.0, 2.0, "RUNNING", False),  # > 52.5 °C
    ("s3", "10:40", "EQ-0001", "CNC_MACHINE", 41.0, 5.0, "WARNING", True),  # > 4.4 mm/s
    ("s4", "10:10", "EQ-0002", "CONVEYOR", 30.0, 1.0, "IDLE", False),
    ("s5", "10:50", "EQ-0002", "CONVEYOR", 31.0, 1.0, "RUNNING", False),
    ("s6", "11:05", "EQ-0002", "CONVEYOR", 32.0, 1.0, "ERROR", True),
]
PRODUCTION = [
    # id, minute, line, product, produced, target, cycle, downtime, reason
    ("p1", "10:00", "LINE-01", "PRD-001", 90, 100, 30.0, 0.0, None),
    ("p2", "10:15", "LINE-01", "PRD-001", 80, 100, 32.0, 6.0, "EQUIPMENT_FAILURE"),
    ("p3", "10:15", "LINE-02", "PRD-002", 100, 100, 25.0, 0.0, None),
]
QUALITY = [
    ("q1", "10:01", "PRD-001", True),
    ("q2", "10:02", "PRD-001", True),
    ("q3", "10:03", "PRD-001", False),
    ("q4", "10:04", "PRD-001", True),
    ("q5", "10:04", "PRD-002", False),
]


def _ts(minute: str) -> str:
    return f"2026-11-23 {minute}:00"


def _lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(records: list[tuple[object, ...]]) -> str:
    return ", ".join("(" + ", ".join(_lit(v) for v in r) + ")" for r in records)


async def _apply_all(client: SqlApiClient) -> None:
    lines: list[str] = []
    count = await run_planned(client, plan(), lines.append)
    assert count == len(lines) > 90
    assert all(line.startswith("sql/") for line in lines)


def _standin(make_standin: StandinFactory) -> Standin:
    return make_standin(sql_dirs=(MANUFACTURING_SQL, RETAIL_SQL), task_minute_s=3600.0)


async def _one(client: SqlApiClient, statement: str) -> dict[str, Any]:
    found = await rows(client, statement)
    assert len(found) == 1, found
    return found[0]


async def test_manufacturing_star_schema_and_kpis(make_standin: StandinFactory) -> None:
    standin = _standin(make_standin)
    async with sql_client(standin) as c:
        await _apply_all(c)
        sensor = [
            (
                i,
                _ts(m),
                eq,
                kind,
                "LINE-01",
                t,
                6.0 if kind == "CNC_MACHINE" else 1.2,
                v,
                50.0,
                st,
                a,
            )
            for i, m, eq, kind, t, v, st, a in SENSORS
        ]
        await c.execute(
            f"INSERT INTO {MFG}.RAW_DATA.SENSOR_DATA_RAW (EVENT_ID, EVENT_TIMESTAMP, EQUIPMENT_ID, "
            "EQUIPMENT_TYPE, LINE_ID, TEMPERATURE, PRESSURE, VIBRATION, SPEED, STATUS, IS_ANOMALY) "
            f"VALUES {_values(sensor)}"
        )
        production = [(i, _ts(m), *rest, "DAY") for i, m, *rest in PRODUCTION]
        await c.execute(
            f"INSERT INTO {MFG}.RAW_DATA.PRODUCTION_DATA_RAW (EVENT_ID, EVENT_TIMESTAMP, LINE_ID, "
            "PRODUCT_ID, UNITS_PRODUCED, UNITS_TARGET, CYCLE_TIME_SECONDS, DOWNTIME_MINUTES, "
            f"DOWNTIME_REASON, SHIFT) VALUES {_values(production)}"
        )
        quality = [
            (i, _ts(m), p, "LINE-01", "B-1", "WEIGHT", 250.0, 247.5, 252.5, ok, None if ok else "X")
            for i, m, p, ok in QUALITY
        ]
        await c.execute(
            f"INSERT INTO {MFG}.RAW_DATA.QUALITY_DATA_RAW (EVENT_ID, EVENT_TIMESTAMP, PRODUCT_ID, "
            "LINE_ID, BATCH_ID, TEST_TYPE, MEASURED_VALUE, SPEC_LOWER, SPEC_UPPER, PASSED, "
            f"DEFECT_TYPE) VALUES {_values(quality)}"
        )
        for task in ("TASK_LOAD_SENSOR_FACTS", "TASK_LOAD_PRODUCTION_FACTS",
                     "TASK_LOAD_QUALITY_FACTS", "TASK_MERGE_DIM_TIME"):  # fmt: skip
            await c.execute(f"EXECUTE TASK {MFG}.RAW_DATA.{task}")
        await c.execute(f"EXECUTE TASK {MFG}.AGGREGATION.TASK_AGG_REALTIME_DASHBOARD")
        # A second run finds the streams empty: WHEN is false, nothing is loaded twice.
        await c.execute(f"EXECUTE TASK {MFG}.RAW_DATA.TASK_LOAD_SENSOR_FACTS")

        a = f"{MFG}.ANALYTICS"
        counts = await _one(
            c,
            f"SELECT (SELECT COUNT(*) FROM {a}.FACT_SENSOR_READINGS) AS S, "
            f"(SELECT COUNT(*) FROM {a}.FACT_PRODUCTION) AS P, "
            f"(SELECT COUNT(*) FROM {a}.FACT_QUALITY) AS Q, "
            f"(SELECT COUNT(*) FROM {a}.DIM_EQUIPMENT) AS E, "
            f"(SELECT COUNT(*) FROM {a}.DIM_PRODUCTION_LINE) AS L, "
            f"(SELECT COUNT(*) FROM {a}.DIM_PRODUCT) AS D, "
            f"(SELECT COUNT(*) FROM {a}.DIM_TIME) AS T",
        )
        minutes = {m for _, m, *_ in SENSORS} | {m for _, m, *_ in PRODUCTION}
        minutes |= {m for _, m, *_ in QUALITY}
        assert counts == {"S": 6, "P": 3, "Q": 5, "E": 2, "L": 2, "D": 2, "T": len(minutes)}

        alerts = await rows(
            c,
            f"SELECT EVENT_ID, TEMPERATURE_ALERT AS T, VIBRATION_ALERT AS V, ALERT_LEVEL AS L "
            f"FROM {a}.FACT_SENSOR_READINGS ORDER BY EVENT_ID",
        )
        assert [(r["EVENT_ID"], r["T"], r["V"], r["L"]) for r in alerts] == [
            ("s1", False, False, "NORMAL"),
            ("s2", True, False, "WARNING"),
            ("s3", False, True, "WARNING"),
            ("s4", False, False, "NORMAL"),
            ("s5", False, False, "NORMAL"),
            ("s6", False, False, "CRITICAL"),
        ]
        shift = await _one(c, f"SELECT SHIFT FROM {a}.DIM_TIME WHERE TIME_KEY = 202611231005")
        assert shift == {"SHIFT": "DAY"}

        g = f"{MFG}.AGGREGATION"
        perf = await rows(
            c,
            f"SELECT EQUIPMENT_ID AS E, HOUR(TIME_WINDOW_START) AS H, READINGS AS N, "
            f"AVG_TEMPERATURE AS T, MAX_TEMPERATURE AS M, ANOMALY_COUNT AS A, ALERT_COUNT AS AL, "
            f"AVAILABILITY_PERCENT AS AV FROM {g}.AGG_EQUIPMENT_PERFORMANCE ORDER BY 1, 2",
        )
        assert [tuple(r.values()) for r in perf] == [
            ("EQ-0001", 10, 3, 47.0, 60.0, 1, 2, Decimal("66.67")),
            ("EQ-0002", 10, 2, 30.5, 31.0, 0, 0, Decimal("50.00")),
            ("EQ-0002", 11, 1, 32.0, 32.0, 1, 1, Decimal("0.00")),
        ]
        lines = await rows(
            c,
            f"SELECT LINE_ID AS L, TOTAL_UNITS_PRODUCED AS U, PRODUCTION_EFFICIENCY_PERCENT AS E, "
            f"AVG_CYCLE_TIME_SECONDS AS C, TOTAL_DOWNTIME_MINUTES AS D "
            f"FROM {g}.AGG_PRODUCTION_METRICS ORDER BY 1",
        )
        assert [tuple(r.values()) for r in lines] == [
            ("LINE-01", 170, Decimal("85.00"), 31.0, 6.0),
            ("LINE-02", 100, Decimal("100.00"), 25.0, 0.0),
        ]
        quality_kpis = await rows(
            c,
            f"SELECT PRODUCT_ID AS P, TESTS AS T, FAILED_TESTS AS F, PASS_RATE_PERCENT AS R, "
            f"DEFECT_RATE_PER_THOUSAND AS D FROM {g}.AGG_QUALITY_SUMMARY ORDER BY 1",
        )
        assert [tuple(r.values()) for r in quality_kpis] == [
            ("PRD-001", 4, 1, Decimal("75.00"), Decimal("250.00")),
            ("PRD-002", 1, 1, Decimal("0.00"), Decimal("1000.00")),
        ]
        health = await rows(
            c,
            f"SELECT EQUIPMENT_ID AS E, READINGS_24H AS N, OVERALL_HEALTH_SCORE AS S, "
            f"MAINTENANCE_PRIORITY AS P FROM {g}.AGG_PREDICTIVE_MAINTENANCE ORDER BY 1",
        )
        # score = max(0, 100 - 300 * anomalies / readings - 100 * alerts / readings)
        assert [tuple(r.values()) for r in health] == [
            ("EQ-0001", 3, Decimal("0.0"), "CRITICAL"),
            ("EQ-0002", 3, Decimal("0.0"), "CRITICAL"),
        ]
        dashboard = await _one(
            c,
            f"SELECT ACTIVE_EQUIPMENT AS A, EQUIPMENT_IN_ALERT AS E, SENSOR_READINGS_LAST_HOUR AS S, "
            f"UNITS_PRODUCED_LAST_HOUR AS U, EFFICIENCY_PERCENT_LAST_HOUR AS F, "
            f"QUALITY_PASS_RATE_LAST_HOUR AS Q FROM {g}.AGG_REALTIME_DASHBOARD",
        )
        # The last hour before the newest reading (11:05) excludes s1 at 10:05 exactly.
        assert dashboard == {
            "A": 2, "E": 2, "S": 5, "U": 270, "F": Decimal("90.00"), "Q": Decimal("60.00"),
        }  # fmt: skip


CHANGES = [
    # batch, id, minute, customer, op, name, city, tier
    (1, "c1", "09:00", "C1", "insert", "Ann", "Oslo", "GOLD"),
    (1, "c2", "09:00", "C2", "insert", "Bob", "Rome", "BRONZE"),
    (1, "c3", "09:30", "C1", "update", "Ann", "Bergen", "GOLD"),
    (2, "c4", "10:00", "C1", "update", "Ann", "Bergen", "PLATINUM"),
    (2, "c5", "10:00", "C2", "delete", "Bob", "Rome", "BRONZE"),
    (2, "c6", "10:00", "C3", "insert", "Cid", "Lima", "SILVER"),
]


async def test_customers_scd_and_medallion(make_standin: StandinFactory) -> None:
    standin = _standin(make_standin)
    r = "RETAIL_DEMO"
    async with sql_client(standin) as c:
        await _apply_all(c)
        for batch in (1, 2):
            changes = [
                (i, _ts(m), cust, op, name, f"{name}@x", city, tier, _ts(m))
                for b, i, m, cust, op, name, city, tier in CHANGES
                if b == batch
            ]
            await c.execute(
                f"INSERT INTO {r}.RAW_DATA.CUSTOMER_CHANGES_RAW (EVENT_ID, EVENT_TIMESTAMP, "
                "CUSTOMER_ID, OP, NAME, EMAIL, CITY, TIER, UPDATED_AT) "
                f"VALUES {_values(changes)}"
            )
            await c.execute(f"EXECUTE TASK {r}.CURATED.TASK_CUSTOMERS_SCD1")
            await c.execute(f"EXECUTE TASK {r}.CURATED.TASK_CUSTOMERS_SCD2")

        scd1 = await rows(
            c, f"SELECT CUSTOMER_ID AS C, CITY, TIER FROM {r}.CURATED.CUSTOMERS ORDER BY 1"
        )
        assert [tuple(x.values()) for x in scd1] == [
            ("C1", "Bergen", "PLATINUM"),
            ("C3", "Lima", "SILVER"),
        ]
        scd2 = await rows(
            c,
            f"SELECT CUSTOMER_ID AS C, CITY, TIER, VALID_FROM AS F, VALID_TO AS T, IS_CURRENT AS K "
            f"FROM {r}.CURATED.CUSTOMERS_HISTORY ORDER BY 1, 4",
        )

        def at(minute: str) -> datetime:
            return datetime.fromisoformat(_ts(minute))

        assert [tuple(x.values()) for x in scd2] == [
            ("C1", "Oslo", "GOLD", at("09:00"), at("09:30"), False),
            ("C1", "Bergen", "GOLD", at("09:30"), at("10:00"), False),
            ("C1", "Bergen", "PLATINUM", at("10:00"), None, True),
            ("C2", "Rome", "BRONZE", at("09:00"), at("10:00"), False),
            ("C3", "Lima", "SILVER", at("10:00"), None, True),
        ]

        # CDC of the SCD1 table: C2 came and went between exports, so only C1 and C3 arrive.
        await c.execute(f"EXECUTE TASK {r}.CDC.TASK_CDC_TO_ICEBERG")
        iceberg = await rows(
            c, f"SELECT CUSTOMER_ID AS C, TIER FROM {r}.CDC.CUSTOMERS_ICEBERG ORDER BY 1"
        )
        assert [tuple(x.values()) for x in iceberg] == [("C1", "PLATINUM"), ("C3", "SILVER")]

        # Medallion: POS baskets flattened to lines, sessions from the clickstream.
        await c.execute(
            f"INSERT INTO {r}.RAW_DATA.POS_TRANSACTIONS_RAW (EVENT_ID, EVENT_TIMESTAMP, "
            "TRANSACTION_ID, STORE_ID, CUSTOMER_ID, LINE_ITEMS, ITEM_COUNT, TOTAL_AMOUNT, "
            "PAYMENT_METHOD) "
            "SELECT 't1', '2026-11-23 10:00:00', 'T1', 'S1', 'C1', PARSE_JSON('[{\"product_id\": "
            '"SKU-1", "quantity": 2, "unit_price": 1.25}, {"product_id": "SKU-2", '
            '"quantity": 1, "unit_price": 4.00}]\'), 3, 6.50, \'CARD\' UNION ALL '
            "SELECT 't2', '2026-11-23 11:00:00', 'T2', 'S1', NULL, PARSE_JSON('[{\"product_id\": "
            '"SKU-1", "quantity": 4, "unit_price": 1.00}]\'), 4, 4.00, \'CASH\''
        )
        clicks = [
            (f"k{n}", _ts(f"10:0{n}"), "A", "C1", "/", kind, n, None, "MOBILE")
            for n, kind in enumerate(
                ["page_view", "page_view", "product_view", "add_to_cart", "purchase"], start=1
            )
        ] + [("k6", _ts("10:06"), "B", None, "/", "page_view", 1, None, "DESKTOP")]
        await c.execute(
            f"INSERT INTO {r}.RAW_DATA.CLICKSTREAM_RAW (EVENT_ID, EVENT_TIMESTAMP, SESSION_ID, "
            "CUSTOMER_ID, PAGE, EVENT_TYPE, FUNNEL_STEP, PRODUCT_ID, DEVICE) "
            f"VALUES {_values(clicks)}"
        )
        m = "MEDALLION_DEMO"
        for table in ("SILVER.TRANSACTIONS_ENRICHED", "SILVER.CUSTOMER_SESSIONS",
                      "GOLD.DAILY_SALES_SUMMARY", "GOLD.PRODUCT_PERFORMANCE",
                      "GOLD.CUSTOMER_BEHAVIOR_METRICS"):  # fmt: skip
            await c.execute(f"ALTER DYNAMIC TABLE {m}.{table} REFRESH")
        lines = await rows(
            c,
            f"SELECT TRANSACTION_ID AS T, LINE_NUMBER AS N, PRODUCT_ID AS P, LINE_TOTAL AS L "
            f"FROM {m}.SILVER.TRANSACTIONS_ENRICHED ORDER BY 1, 2",
        )
        assert [tuple(x.values()) for x in lines] == [
            ("T1", 0, "SKU-1", Decimal("2.50")),
            ("T1", 1, "SKU-2", Decimal("4.00")),
            ("T2", 0, "SKU-1", Decimal("4.00")),
        ]
        daily = await _one(
            c,
            f"SELECT TRANSACTIONS AS T, UNITS_SOLD AS U, REVENUE AS R FROM {m}.GOLD.DAILY_SALES_SUMMARY",
        )
        assert daily == {"T": 2, "U": 7, "R": Decimal("10.50")}
        products = await rows(
            c,
            f"SELECT PRODUCT_ID AS P, UNITS_SOLD AS U, REVENUE AS R FROM {m}.GOLD.PRODUCT_PERFORMANCE ORDER BY 1",
        )
        assert [tuple(x.values()) for x in products] == [
            ("SKU-1", 6, Decimal("6.50")),
            ("SKU-2", 1, Decimal("4.00")),
        ]
        behaviour = await rows(
            c,
            f"SELECT DEVICE AS D, SESSIONS AS S, CONVERTED_SESSIONS AS C, "
            f"CONVERSION_RATE_PERCENT AS R FROM {m}.GOLD.CUSTOMER_BEHAVIOR_METRICS ORDER BY 1",
        )
        assert [tuple(x.values()) for x in behaviour] == [
            ("DESKTOP", 1, 0, Decimal("0.00")),
            ("MOBILE", 1, 1, Decimal("100.00")),
        ]
        freshness = await rows(
            c,
            "SELECT PIPELINE, BEHIND_SECONDS FROM STREAMD_MONITORING.MONITORING.V_PIPELINE_FRESHNESS "
            "WHERE PIPELINE LIKE 'retail.customer_changes%'",
        )
        assert {x["BEHIND_SECONDS"] for x in freshness} == {0}
