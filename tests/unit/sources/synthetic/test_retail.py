"""The synthetic retail source: producers, ids, row shapes, funnels, CDC order, timing, config."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest
from pydantic import ValidationError

from streamd.rows import Envelope
from streamd.sources.synthetic.retail import RetailSource, RetailSourceConfig
from streamd.sources.synthetic.retail_models import FUNNEL
from streamd.testing import ManualClock, MemorySequences, drain, running_source, settle
from tests.conftest import MANUFACTURING_SQL, StandinFactory

from .generated import generated, producer_of, returns_when_the_receiver_closes

RETAIL_SQL = Path(__file__).parents[4] / "sql" / "retail"
DDL = RETAIL_SQL / "02_raw_tables.sql"
POS = "RETAIL_DEMO.RAW_DATA.POS_TRANSACTIONS_RAW"
CLICK = "RETAIL_DEMO.RAW_DATA.CLICKSTREAM_RAW"
SHOP = "RETAIL_DEMO.RAW_DATA.ECOMMERCE_EVENTS_RAW"
CUSTOMERS = "RETAIL_DEMO.RAW_DATA.CUSTOMER_CHANGES_RAW"
ID_FORMAT = re.compile(r"(pos-STORE-\d{3}|click-WEB-\d{2}|ecommerce-SHOP-\d{2}|customers):(\d+)")
ONLY = {"store_count": 0, "web_count": 0, "shop_count": 0, "customer_changes": False}


def config(**overrides: Any) -> RetailSourceConfig:
    return RetailSourceConfig.model_validate(overrides)


def only(**overrides: Any) -> RetailSourceConfig:
    """A config with every producer off except those `overrides` turn on."""
    return config(**{**ONLY, **overrides})


async def produce(
    cfg: RetailSourceConfig,
    seconds: float,
    *,
    steps: int = 1,
    sequences: MemorySequences | None = None,
) -> list[Envelope]:
    return await generated(RetailSource(cfg), seconds, steps=steps, sequences=sequences)


def ddl_columns() -> dict[str, dict[str, tuple[str, int, bool]]]:
    """{TABLE: {COLUMN: (type, scale, not_null)}} parsed from the DDL (the contract)."""
    tables: dict[str, dict[str, tuple[str, int, bool]]] = {}
    current: dict[str, tuple[str, int, bool]] = {}
    for line in DDL.read_text().splitlines():
        if m := re.match(r"CREATE TABLE IF NOT EXISTS (\S+) \(", line):
            current = tables.setdefault(m.group(1), {})
        elif m := re.match(
            r"\s+([A-Z_]+)\s+([A-Z_]+)(?:\((\d+)(?:, (\d+))?\))?\s*(NOT NULL)?,?$", line
        ):
            current[m.group(1)] = (m.group(2), int(m.group(4) or 0), m.group(5) is not None)
    return tables


ALL = {"store_count": 3, "web_count": 2, "shop_count": 2, "customer_count": 50, "product_count": 40}


# --- producers and ids ---------------------------------------------------------------------------


async def test_one_producer_per_store_web_front_end_shop_feed_and_customers() -> None:
    clock, sequences = ManualClock(), MemorySequences()
    source = RetailSource(config(**ALL))
    async with running_source(source, clock, sequences) as receive:
        await settle(clock, 8)
        clock.advance(10.5)
        await settle(clock, 8)
        rows = drain(receive)
    expected = {"pos-STORE-001", "pos-STORE-002", "pos-STORE-003", "click-WEB-01", "click-WEB-02"}
    expected |= {"ecommerce-SHOP-01", "ecommerce-SHOP-02", "customers"}
    assert set(Counter(producer_of(e) for e in rows)) == expected == set(sequences.next)
    assert set(source.producers()) == expected
    tables = {producer_of(e).split("-")[0]: e.table for e in rows}
    assert tables == {"pos": POS, "click": CLICK, "ecommerce": SHOP, "customers": CUSTOMERS}


async def test_same_seed_same_rows_other_seed_other_rows() -> None:
    cfg = {**ALL, "pos_interval_ms": 50, "click_interval_ms": 50, "ecommerce_interval_ms": 50}
    first = await produce(config(**cfg), 5.0, steps=7)
    again = await produce(config(**cfg), 5.0, steps=7)
    other = await produce(config(seed=7, **cfg), 5.0, steps=7)
    assert len(first) > 600

    def key(e: Envelope) -> str:
        return str(e.row["EVENT_ID"])

    assert sorted(first, key=key) == sorted(again, key=key)
    assert [e.row for e in sorted(first, key=key)] != [e.row for e in sorted(other, key=key)]


async def test_ids_unique_formatted_contiguous_and_prefixed() -> None:
    cfg = {**ALL, "pos_interval_ms": 10, "click_interval_ms": 10, "customer_change_interval_ms": 10}
    rows = await produce(config(**cfg), 3.0, steps=3)
    ids = [str(e.row["EVENT_ID"]) for e in rows]
    assert len(ids) == len(set(ids))
    sequences: dict[str, list[int]] = defaultdict(list)
    for event_id in ids:
        match = ID_FORMAT.fullmatch(event_id)
        assert match, event_id
        sequences[match.group(1)].append(int(match.group(2)))
    for producer, numbers in sequences.items():
        assert numbers == list(range(len(numbers))), producer
    transactions = [e.row["TRANSACTION_ID"] for e in rows if e.table == POS]
    assert len(transactions) == len(set(transactions))
    prefixed = await produce(config(id_prefix="eu-", **ALL), 2.0)
    assert all(str(e.row["EVENT_ID"]).startswith("eu-") for e in prefixed)
    assert all(e.row["TRANSACTION_ID"].startswith("eu-") for e in prefixed if e.table == POS)


# --- row shapes ----------------------------------------------------------------------------------


async def test_rows_match_the_ddl_columns_and_types() -> None:
    cfg = {**ALL, "pos_interval_ms": 20, "click_interval_ms": 20, "ecommerce_interval_ms": 20}
    rows = await produce(config(customer_change_interval_ms=20, **cfg), 10.0, steps=4)
    contract = ddl_columns()
    assert set(contract) == {POS, CLICK, SHOP, CUSTOMERS}
    assert all(count > 300 for count in Counter(e.table for e in rows).values())
    nulls: Counter[tuple[str, str]] = Counter()
    for envelope in rows:
        row, columns = envelope.row, contract[envelope.table]
        assert set(row) == set(columns)
        for column, (sql_type, scale, not_null) in columns.items():
            value = row[column]
            if value is None:
                assert not not_null, f"{column} is NOT NULL"
                nulls[envelope.table, column] += 1
                continue
            expected: type | tuple[type, ...] = {
                "VARCHAR": str,
                "TIMESTAMP_NTZ": str,
                "NUMBER": float if scale else int,
                "VARIANT": (dict, list),
            }[sql_type]
            assert isinstance(value, expected), (column, value)
            assert not isinstance(value, bool)
            if sql_type == "NUMBER" and scale:
                assert isinstance(value, float)
                assert round(value, scale) == value, (column, value)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", row["EVENT_TIMESTAMP"])
        assert datetime.fromisoformat(row["EVENT_TIMESTAMP"]).tzinfo is None
        assert row["RAW_PAYLOAD"] == {k.lower(): v for k, v in row.items() if k != "RAW_PAYLOAD"}
    # Anonymous shoppers and visitors exist; nullable columns are really used.
    assert nulls[POS, "CUSTOMER_ID"] > 0
    assert nulls[CLICK, "CUSTOMER_ID"] > 0
    assert nulls[SHOP, "ORDER_ID"] > 0


async def test_pos_totals_are_the_sum_of_the_line_items() -> None:
    rows = [e.row for e in await produce(only(store_count=2, pos_interval_ms=5), 10.0)]
    assert len(rows) > 3000
    for row in rows:
        items = row["LINE_ITEMS"]
        assert 1 <= len(items) <= 8
        for item in items:
            assert set(item) == {"product_id", "quantity", "unit_price"}
            assert isinstance(item["quantity"], int)
            assert item["quantity"] >= 1
            assert item["unit_price"] > 0
        assert row["TOTAL_AMOUNT"] == round(sum(i["quantity"] * i["unit_price"] for i in items), 2)
        assert row["ITEM_COUNT"] == sum(i["quantity"] for i in items)
    assert len({r["PAYMENT_METHOD"] for r in rows}) == 5


async def test_funnels_only_move_forward_within_a_session_with_drop_off() -> None:
    rows = [e.row for e in await produce(only(web_count=3, click_interval_ms=5), 20.0)]
    assert len(rows) > 10_000
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        sessions[row["SESSION_ID"]].append(row)
    reached: Counter[int] = Counter()
    for events in sessions.values():
        steps = [e["FUNNEL_STEP"] for e in events]
        assert steps[0] == 1
        assert all(0 <= b - a <= 1 for a, b in pairwise(steps)), steps
        assert len({(e["CUSTOMER_ID"], e["DEVICE"]) for e in events}) == 1
        for e in events:
            page_kind, event_type = FUNNEL[e["FUNNEL_STEP"] - 1]
            assert e["EVENT_TYPE"] == event_type
            assert (e["PRODUCT_ID"] is not None) is (e["FUNNEL_STEP"] >= 3)
            assert e["PAGE"].startswith(
                {"home": "/", "category": "/c/", "product": "/p/"}.get(page_kind, f"/{page_kind}")
            )
        reached.update(range(1, max(steps) + 1))
    # Realistic drop-off: every step is reached by fewer sessions than the one before.
    counts = [reached[step] for step in range(1, 6)]
    assert counts == sorted(counts, reverse=True)
    assert counts[4] > 0
    assert 0.01 < counts[4] / counts[0] < 0.15


async def test_ecommerce_add_to_cart_follows_a_view_and_purchase_an_add_to_cart() -> None:
    rows = [e.row for e in await produce(only(shop_count=1, ecommerce_interval_ms=5), 20.0)]
    assert len(rows) > 3000
    viewed: Counter[tuple[str, str]] = Counter()
    carted: Counter[tuple[str, str]] = Counter()
    for row in rows:
        pair = (row["CUSTOMER_ID"], row["PRODUCT_ID"])
        if row["EVENT_TYPE"] == "view":
            viewed[pair] += 1
            assert row["QUANTITY"] == 1
        elif row["EVENT_TYPE"] == "add_to_cart":
            assert viewed[pair] > 0
            viewed[pair] -= 1
            carted[pair] += 1
        else:
            assert row["EVENT_TYPE"] == "purchase"
            assert carted[pair] > 0
            carted[pair] -= 1
        assert (row["ORDER_ID"] is not None) is (row["EVENT_TYPE"] == "purchase")
    types = Counter(r["EVENT_TYPE"] for r in rows)
    assert types["view"] > types["add_to_cart"] > types["purchase"] > 0


async def test_customers_inserted_once_before_any_update_and_updates_change_something() -> None:
    cfg = only(customer_changes=True, customer_count=200, customer_change_interval_ms=5)
    rows = [e.row for e in await produce(cfg, 10.0)]
    assert len(rows) > 1500
    current: dict[str, dict[str, Any]] = {}
    for row in rows:
        record = {k: row[k] for k in ("NAME", "EMAIL", "CITY", "TIER")}
        assert row["UPDATED_AT"] == row["EVENT_TIMESTAMP"]
        if row["OP"] == "insert":
            assert row["CUSTOMER_ID"] not in current
        else:
            assert row["OP"] == "update"
            before = current[row["CUSTOMER_ID"]]
            assert record != before
            assert record["NAME"] == before["NAME"]
        current[row["CUSTOMER_ID"]] = record
    assert len(current) == 200
    assert Counter(r["OP"] for r in rows)["insert"] == 200


async def test_customer_restart_continues_without_reinserting() -> None:
    sequences = MemorySequences(start={"customers": 100})
    cfg = only(customer_changes=True, customer_count=80, customer_change_interval_ms=1000, jitter=0)
    rows = [e.row for e in await produce(cfg, 20.5, sequences=sequences)]
    assert [r["OP"] for r in rows] == ["insert", "update"] * 10
    assert [r["CUSTOMER_ID"] for r in rows[::2]] == [f"CUST-{i:06d}" for i in range(51, 61)]


# --- timing and cancellation ---------------------------------------------------------------------


async def test_one_ms_interval_catches_up_in_one_burst() -> None:
    rows = await produce(only(store_count=1, pos_interval_ms=1, jitter=0), 1.0)
    assert 999 <= len(rows) <= 1001
    stamps = [datetime.fromisoformat(e.row["EVENT_TIMESTAMP"]).timestamp() for e in rows]
    assert all(abs(b - a - 0.001) < 2e-6 for a, b in pairwise(stamps))


async def test_closed_receiver_stops_the_source_cleanly() -> None:
    await returns_when_the_receiver_closes(RetailSource(config(**ALL)))


# --- config --------------------------------------------------------------------------------------


def test_config_defaults_and_tables() -> None:
    cfg = RetailSourceConfig()
    assert cfg.tables() == [POS, CLICK, SHOP, CUSTOMERS]
    assert cfg.model_dump(by_alias=True)["schema"] == "RAW_DATA"
    assert (
        config(database="SHOP", schema="LANDING").tables()[0] == "SHOP.LANDING.POS_TRANSACTIONS_RAW"
    )
    for name, field in RetailSourceConfig.model_fields.items():
        assert field.description, f"{name} needs an attribute docstring"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"store_count": -1}, r"store_count\n.*greater than or equal to 0"),
        ({"customer_count": 0}, r"customer_count\n.*greater than or equal to 1"),
        ({"pos_interval_ms": 0.5}, r"pos_interval_ms\n.*greater than or equal to 1"),
        ({"kind": "manufacturing"}, r"kind\n.*'retail'"),
        ({"pos_table": "1P"}, r"pos_table\n.*not a plain Snowflake identifier"),
        ({"stores": 3}, r"stores\n.*Extra inputs are not permitted"),
    ],
)
def test_config_rejects(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetailSourceConfig.model_validate(overrides)


# --- the DDL in the stand-in ---------------------------------------------------------------------


async def test_one_row_of_each_table_lands_in_the_standin(make_standin: StandinFactory) -> None:
    standin = make_standin(sql_dirs=(MANUFACTURING_SQL, RETAIL_SQL))
    rows = await produce(config(**ALL), 3.0)
    first = {e.table: e.row for e in reversed(rows)}
    assert set(first) == {POS, CLICK, SHOP, CUSTOMERS}
    async with httpx.AsyncClient(base_url=standin.url, headers={"Authorization": "Bearer x"}) as c:
        token = await c.post(
            "/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": "h"},
        )
        assert token.status_code == 200
        c.headers["Authorization"] = f"Bearer {token.text}"
        for table, row in first.items():
            name = table.split(".")[-1]
            path = f"databases/retail_demo/schemas/raw_data/pipes/{name}-STREAMING"
            opened = await c.put(f"/v2/streaming/{path}/channels/c1", json={})
            assert opened.status_code == 200, opened.text
            r = await c.post(
                f"/v2/streaming/data/{path}/channels/c1/rows",
                params={
                    "continuationToken": opened.json()["next_continuation_token"],
                    "startOffsetToken": "1",
                    "endOffsetToken": "1",
                },
                content=orjson.dumps(row) + b"\n",
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert r.status_code == 200, r.text
        with anyio.fail_after(10):
            while True:
                counts = []
                for table, row in first.items():
                    r = await c.post(
                        "/api/v2/statements", json={"statement": f"SELECT event_id FROM {table}"}
                    )
                    assert r.status_code == 200, r.text
                    counts.append(r.json()["data"] == [[row["EVENT_ID"]]])
                if all(counts):
                    break
                await anyio.sleep(0.05)
        r = await c.post(
            "/api/v2/statements", json={"statement": f"SELECT total_amount, line_items FROM {POS}"}
        )
        total, items = r.json()["data"][0]
        assert float(total) == first[POS]["TOTAL_AMOUNT"]
        assert orjson.loads(items) == first[POS]["LINE_ITEMS"]
