"""The synthetic manufacturing source: producers, ids, row shapes, timing, backpressure, config."""

from __future__ import annotations

import gc
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.synthetic.event_fields import timestamp
from streamd.sources.synthetic.manufacturing import ManufacturingSource, ManufacturingSourceConfig
from streamd.sources.synthetic.manufacturing_models import shift_for_hour
from streamd.testing import ManualClock, MemorySequences, drain, running_source, settle

from .generated import generated, producer_of, returns_when_the_receiver_closes

DDL = Path(__file__).parents[4] / "sql" / "manufacturing" / "02_raw_tables.sql"
SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
PRODUCTION = "MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW"
QUALITY = "MANUFACTURING_DEMO.RAW_DATA.QUALITY_DATA_RAW"
ID_FORMAT = re.compile(r"(sensor-EQ-\d{4}|production-LINE-\d{2}|quality-PRD-\d{3}):(\d+)")


def config(**overrides: Any) -> ManufacturingSourceConfig:
    return ManufacturingSourceConfig.model_validate(overrides)


async def produce(
    cfg: ManufacturingSourceConfig,
    seconds: float,
    *,
    steps: int = 1,
    clock: ManualClock | None = None,
    sequences: MemorySequences | None = None,
) -> list[Envelope]:
    return await generated(
        ManufacturingSource(cfg), seconds, steps=steps, clock=clock, sequences=sequences
    )


def ddl_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    """{TABLE: {COLUMN: (type, not_null)}} parsed from the DDL (the contract)."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    current: dict[str, tuple[str, bool]] = {}
    for line in DDL.read_text().splitlines():
        if m := re.match(r"CREATE TABLE IF NOT EXISTS (\S+) \(", line):
            current = tables.setdefault(m.group(1), {})
        elif m := re.match(r"\s+([A-Z_]+)\s+([A-Z_]+)(\([\d, ]+\))?\s*(NOT NULL)?,?$", line):
            current[m.group(1)] = (m.group(2), m.group(4) is not None)
    return tables


# --- producers and ids ---------------------------------------------------------------------------


async def test_one_producer_task_per_machine_line_and_product() -> None:
    cfg = config(equipment_count=5, line_count=3, product_count=4)
    clock, sequences = ManualClock(), MemorySequences()
    source = ManufacturingSource(cfg)
    async with running_source(source, clock, sequences) as receive:
        # One task per producer: exactly 12 tasks end up asleep on the clock.
        await settle(clock, 12)
        clock.advance(3.5)
        await settle(clock, 12)
        rows = drain(receive)
    by_producer = Counter(producer_of(e) for e in rows)
    expected = (
        {f"sensor-EQ-000{i}" for i in range(1, 6)}
        | {f"production-LINE-0{i}" for i in range(1, 4)}
        | {f"quality-PRD-00{i}" for i in range(1, 5)}
    )
    assert set(by_producer) == expected == set(sequences.next) == set(source.producers())
    assert all(3 <= count <= 4 for count in by_producer.values()), by_producer
    tables = {producer_of(e).split("-")[0]: e.table for e in rows}
    assert tables == {"sensor": SENSOR, "production": PRODUCTION, "quality": QUALITY}
    lines = {e.row["EQUIPMENT_ID"]: e.row["LINE_ID"] for e in rows if e.table == SENSOR}
    assert lines == {
        "EQ-0001": "LINE-01",
        "EQ-0002": "LINE-02",
        "EQ-0003": "LINE-03",
        "EQ-0004": "LINE-01",
        "EQ-0005": "LINE-02",
    }
    quality_lines = {e.row["PRODUCT_ID"]: e.row["LINE_ID"] for e in rows if e.table == QUALITY}
    assert quality_lines["PRD-004"] == "LINE-01"
    for e in rows:
        if e.table == PRODUCTION and e.row["PRODUCT_ID"] is not None:
            # The product a line reports is one the quality producers say that line makes.
            assert quality_lines[e.row["PRODUCT_ID"]] == e.row["LINE_ID"]


async def test_same_seed_same_rows_other_seed_other_rows() -> None:
    cfg = {"equipment_count": 3, "line_count": 2, "product_count": 2, "sensor_interval_ms": 50}
    first = await produce(config(**cfg), 5.0, steps=7)
    again = await produce(config(**cfg), 5.0, steps=7)
    other = await produce(config(seed=7, **cfg), 5.0, steps=7)
    assert len(first) > 300

    def key(e: Envelope) -> str:
        return str(e.row["EVENT_ID"])

    assert sorted(first, key=key) == sorted(again, key=key)
    values = [e.row.get("TEMPERATURE") for e in sorted(first, key=key)]
    assert values != [e.row.get("TEMPERATURE") for e in sorted(other, key=key)]


async def test_event_ids_unique_formatted_and_contiguous_per_producer() -> None:
    rows = await produce(config(equipment_count=4, sensor_interval_ms=10), 3.0, steps=3)
    ids = [str(e.row["EVENT_ID"]) for e in rows]
    assert len(ids) == len(set(ids))
    sequences: dict[str, list[int]] = defaultdict(list)
    for event_id in ids:
        match = ID_FORMAT.fullmatch(event_id)
        assert match, event_id
        sequences[match.group(1)].append(int(match.group(2)))
    for producer, numbers in sequences.items():
        assert numbers == list(range(len(numbers))), producer


async def test_ids_continue_after_a_restart_across_blocks() -> None:
    # A previous run reserved up to 500 for one machine; blocks of 10 must be fetched repeatedly.
    sequences = MemorySequences(block=10, start={"sensor-EQ-0001": 500})
    cfg = config(equipment_count=1, line_count=0, product_count=0, jitter=0)
    rows = await produce(cfg, 25.5, sequences=sequences)
    numbers = [int(str(e.row["EVENT_ID"]).split(":")[1]) for e in rows]
    assert numbers == list(range(500, 500 + len(numbers)))
    assert len(numbers) in (25, 26)
    assert sequences.next["sensor-EQ-0001"] == 530


# --- row shapes ----------------------------------------------------------------------------------


async def test_rows_match_the_ddl_columns_and_types() -> None:
    rows = await produce(config(equipment_count=8, sensor_interval_ms=100), 20.0, steps=4)
    contract = ddl_columns()
    assert set(contract) == {SENSOR, PRODUCTION, QUALITY}
    seen = Counter(e.table for e in rows)
    assert seen[SENSOR] > 1000
    assert seen[PRODUCTION] > 50
    assert seen[QUALITY] > 80
    for envelope in rows:
        row, columns = envelope.row, contract[envelope.table]
        assert set(row) == set(columns)
        for column, (sql_type, not_null) in columns.items():
            value = row[column]
            if value is None:
                assert not not_null, f"{column} is NOT NULL"
                continue
            expected: type | tuple[type, ...] = {
                "VARCHAR": str,
                "TIMESTAMP_NTZ": str,
                "FLOAT": float,
                "NUMBER": int,
                "BOOLEAN": bool,
                "VARIANT": dict,
            }[sql_type]
            assert isinstance(value, expected), (column, value)
            assert not (sql_type == "NUMBER" and isinstance(value, bool))
        stamp = datetime.fromisoformat(row["EVENT_TIMESTAMP"])
        assert stamp.tzinfo is None
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", row["EVENT_TIMESTAMP"])
        payload = row["RAW_PAYLOAD"]
        assert payload == {k.lower(): v for k, v in row.items() if k != "RAW_PAYLOAD"}
    statuses = {e.row["STATUS"] for e in rows if e.table == SENSOR}
    assert (
        {"RUNNING", "WARNING"} <= statuses <= {"RUNNING", "WARNING", "ERROR", "IDLE", "MAINTENANCE"}
    )


async def test_event_timestamps_come_from_the_wall_clock() -> None:
    clock = ManualClock(start_wall=datetime(2025, 3, 1, 12, 0, tzinfo=UTC).timestamp())
    cfg = config(equipment_count=1, line_count=0, product_count=0, jitter=0)
    rows = await produce(cfg, 3.0, clock=clock)
    stamps = [datetime.fromisoformat(e.row["EVENT_TIMESTAMP"]) for e in rows]
    assert len(stamps) == 3
    assert all(datetime(2025, 3, 1, 12, 0) <= s < datetime(2025, 3, 1, 12, 0, 3) for s in stamps)
    gaps = {round((b - a).total_seconds(), 5) for a, b in pairwise(stamps)}
    assert gaps == {1.0}


async def test_quality_passed_agrees_with_the_limits() -> None:
    cfg = config(equipment_count=0, product_count=6, quality_interval_ms=10)
    rows = [e.row for e in await produce(cfg, 20.0, steps=4) if e.table == QUALITY]
    assert len(rows) > 10_000
    for row in rows:
        within = row["SPEC_LOWER"] <= row["MEASURED_VALUE"] <= row["SPEC_UPPER"]
        assert row["PASSED"] is within
        assert (row["DEFECT_TYPE"] is None) is within
        assert row["SPEC_LOWER"] < row["SPEC_UPPER"]
    fail_rate = sum(not r["PASSED"] for r in rows) / len(rows)
    assert 0.005 < fail_rate < 0.06
    assert len({r["TEST_TYPE"] for r in rows}) >= 3
    assert len({r["BATCH_ID"] for r in rows if r["PRODUCT_ID"] == "PRD-001"}) >= 10


async def test_production_rows_are_plausible() -> None:
    cfg = config(equipment_count=0, product_count=0, line_count=4, production_interval_ms=10)
    rows = [e.row for e in await produce(cfg, 20.0, steps=2) if e.table == PRODUCTION]
    assert len(rows) > 7000
    for row in rows:
        assert 0 <= row["UNITS_PRODUCED"] <= row["UNITS_TARGET"] * 1.2
        assert (row["DOWNTIME_REASON"] is None) is (row["DOWNTIME_MINUTES"] == 0.0)
        assert 0.0 <= row["DOWNTIME_MINUTES"] <= 15.0
    reasons = Counter(r["DOWNTIME_REASON"] for r in rows if r["DOWNTIME_REASON"])
    assert len(reasons) >= 6
    assert 0.05 < sum(reasons.values()) / len(rows) < 0.25


async def test_anomalies_at_roughly_the_configured_rate() -> None:
    cfg = config(equipment_count=10, line_count=0, product_count=0, sensor_interval_ms=10)
    rows = [e.row for e in await produce(cfg.model_copy(update={"anomaly_rate": 0.05}), 20.0)]
    assert len(rows) > 19_000
    rate = sum(r["IS_ANOMALY"] for r in rows) / len(rows)
    assert 0.04 < rate < 0.06
    for row in rows:
        assert row["IS_ANOMALY"] is (row["STATUS"] in ("WARNING", "ERROR"))
    quiet = await produce(cfg.model_copy(update={"anomaly_rate": 0.0}), 5.0)
    assert quiet
    assert not any(e.row["IS_ANOMALY"] for e in quiet)


@pytest.mark.parametrize(
    ("hour", "shift"),
    [
        (0, "NIGHT"),
        (5, "NIGHT"),
        (6, "DAY"),
        (13, "DAY"),
        (14, "SWING"),
        (21, "SWING"),
        (22, "NIGHT"),
    ],
)
def test_shift_for_hour(hour: int, shift: str) -> None:
    assert shift_for_hour(hour) == shift


@pytest.mark.parametrize(("hour", "before", "after"), [(6, "NIGHT", "DAY"), (14, "DAY", "SWING")])
async def test_production_shift_follows_the_event_hour(hour: int, before: str, after: str) -> None:
    start = datetime(2025, 6, 2, hour, tzinfo=UTC).timestamp() - 3
    cfg = config(equipment_count=0, product_count=0, line_count=1, jitter=0)
    rows = await produce(cfg, 6.0, clock=ManualClock(start_wall=start))
    shifts = [(datetime.fromisoformat(e.row["EVENT_TIMESTAMP"]).hour, e.row["SHIFT"]) for e in rows]
    assert {s for _, s in shifts} == {before, after}
    assert all(shift == (after if h == hour else before) for h, shift in shifts)


# --- timing --------------------------------------------------------------------------------------


async def test_one_ms_interval_catches_up_in_one_burst() -> None:
    cfg = config(equipment_count=1, line_count=0, product_count=0, sensor_interval_ms=1, jitter=0)
    rows = await produce(cfg, 1.0)
    # 1000 due in the second (1001 if the random phase were exactly 0), however late the wake-up.
    assert 999 <= len(rows) <= 1001
    stamps = [datetime.fromisoformat(e.row["EVENT_TIMESTAMP"]).timestamp() for e in rows]
    gaps = [b - a for a, b in pairwise(stamps)]
    # Stamped by the schedule, not by the moment of the burst.
    assert all(abs(gap - 0.001) < 2e-6 for gap in gaps)


async def test_jittered_rate_holds_over_many_intervals() -> None:
    cfg = config(equipment_count=2, line_count=0, product_count=0, sensor_interval_ms=1, jitter=0.5)
    rows = await produce(cfg, 10.0, steps=37)
    for producer, count in Counter(producer_of(e) for e in rows).items():
        assert 9_900 <= count <= 10_100, (producer, count)


# --- backpressure and cancellation ---------------------------------------------------------------


async def test_backpressure_blocks_producers_without_dropping_or_buffering() -> None:
    cfg = config(equipment_count=3, line_count=1, product_count=1, jitter=0)
    clock = ManualClock()
    sequences = MemorySequences(block=1000)
    async with running_source(ManufacturingSource(cfg), clock, sequences, capacity=4) as receive:
        await settle(clock, 5)
        clock.advance(10.5)
        for _ in range(10_000):
            await anyio.lowlevel.checkpoint()
            if receive.statistics().tasks_waiting_send == 5:
                break
        stats = receive.statistics()
        # Four rows in the stream, each of the five producers holds exactly one, none sleeps.
        assert (stats.current_buffer_used, stats.tasks_waiting_send) == (4, 5)
        assert clock.sleepers == 0
        clock.advance(100.0)
        for _ in range(100):
            await anyio.lowlevel.checkpoint()
        assert receive.statistics().current_buffer_used == 4
        # Unblock: everything that came due is delivered, in order, with no gap.
        rows: list[Envelope] = []
        for _ in range(100_000):
            rows += drain(receive)
            await anyio.lowlevel.checkpoint()
            if clock.sleepers == 5 and receive.statistics().current_buffer_used == 0:
                break
    per_producer: dict[str, list[int]] = defaultdict(list)
    for e in rows:
        per_producer[producer_of(e)].append(int(str(e.row["EVENT_ID"]).split(":")[1]))
    assert len(per_producer) == 5
    for numbers in per_producer.values():
        assert numbers == list(range(len(numbers)))
        assert 110 <= len(numbers) <= 111


async def test_run_does_not_return_on_its_own() -> None:
    cfg = config(equipment_count=0, line_count=0, product_count=0)
    send, receive = anyio.create_memory_object_stream[Envelope](1)
    ctx = SourceContext(send=send, clock=ManualClock(), sequences=MemorySequences())
    with send, receive, anyio.move_on_after(0.05) as scope:
        await ManufacturingSource(cfg).run(ctx)
    assert scope.cancelled_caught


async def test_the_plan_reports_started_once_and_leaves_the_collector_alone() -> None:
    """Freezing long-lived objects is the daemon's call: the source only says when they exist."""
    source = ManufacturingSource(config(equipment_count=3, line_count=0, product_count=0))
    clock = ManualClock()
    started: list[int] = []
    frozen = gc.get_freeze_count()
    send, receive = anyio.create_memory_object_stream[Envelope](math.inf)
    ctx = SourceContext(send, clock, MemorySequences(), started=lambda: started.append(1))
    with send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.run, ctx)
            await settle(clock, 3)
            assert started == [1]
            clock.advance(1.5)
            await settle(clock, 3)
            assert drain(receive)
            assert gc.get_freeze_count() == frozen
            tg.cancel_scope.cancel()
    assert started == [1]
    assert gc.get_freeze_count() == frozen


async def test_closed_receiver_stops_the_source_cleanly() -> None:
    await returns_when_the_receiver_closes(
        ManufacturingSource(config(equipment_count=2, line_count=1, product_count=1))
    )


# --- config --------------------------------------------------------------------------------------


def test_config_defaults_and_tables() -> None:
    cfg = ManufacturingSourceConfig()
    assert cfg.tables() == [SENSOR, PRODUCTION, QUALITY]
    assert cfg.model_dump(by_alias=True)["schema"] == "RAW_DATA"
    custom = config(database="PLANT", schema="LANDING", sensor_table="SENSORS")
    assert custom.tables()[0] == "PLANT.LANDING.SENSORS"
    assert config(schema_="BY_NAME").schema_ == "BY_NAME"
    for name, field in ManufacturingSourceConfig.model_fields.items():
        assert field.description, f"{name} needs an attribute docstring"
    with pytest.raises(ValidationError, match="frozen"):
        cfg.seed = 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"equipment_count": -1}, r"equipment_count\n.*greater than or equal to 0"),
        ({"line_count": -2}, r"line_count\n.*greater than or equal to 0"),
        ({"sensor_interval_ms": 0.5}, r"sensor_interval_ms\n.*greater than or equal to 1"),
        ({"jitter": 1.5}, r"jitter\n.*less than or equal to 1"),
        ({"anomaly_rate": -0.1}, r"anomaly_rate\n.*greater than or equal to 0"),
        ({"equipmnt_count": 3}, r"equipmnt_count\n.*Extra inputs are not permitted"),
        ({"kind": "retail"}, r"kind\n.*'manufacturing'"),
        ({"schema": "RAW DATA"}, r"schema\n.*not a plain Snowflake identifier"),
        ({"quality_table": "1Q"}, r"quality_table\n.*not a plain Snowflake identifier"),
    ],
)
def test_config_rejects(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ManufacturingSourceConfig.model_validate(overrides)


def test_event_timestamps_have_no_zone_whether_at_is_aware_or_naive() -> None:
    aware = datetime(2025, 3, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert timestamp(aware) == "2025-03-01T12:00:00.000005"
    assert timestamp(aware.replace(tzinfo=None)) == "2025-03-01T12:00:00.000005"
