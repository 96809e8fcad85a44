"""Synthetic manufacturing plant: sensor, production and quality rows on precise schedules.

One producer task per machine (`sensor-EQ-0001`), per production line (`production-LINE-01`) and
per product (`quality-PRD-001`). Each producer has its own seeded RNG and its own schedule, so the
same seed and clock give the same rows, and event ids (`<producer>:<sequence>`) come from the
durable sequence allocator, so they never repeat across restarts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamd.sources.synthetic.config import Identifier, IdPrefix, SyntheticTablesConfig
from streamd.sources.synthetic.manufacturing_models import (
    ProductionModel,
    QualityModel,
    SensorModel,
    equipment_id,
    line_id,
    product_id,
)
from streamd.sources.synthetic.schedule import Producer, SyntheticSource, producer_rng


class ManufacturingSourceConfig(SyntheticTablesConfig):
    """A synthetic plant: machines stream sensor readings, lines report production, products are
    quality-tested. Rows go to three raw tables (see `sql/manufacturing/02_raw_tables.sql`)."""

    TABLE_FIELDS = ("sensor_table", "production_table", "quality_table")

    kind: Literal["manufacturing"] = "manufacturing"
    """Selects this source type."""
    name: str = Field(default="manufacturing", min_length=1)
    """Unique name of this source (appears in logs and metrics)."""
    seed: int = 42
    """Seed of the random generators: the same seed and clock produce the same rows."""
    equipment_count: int = Field(default=20, ge=0, le=9999)
    """Machines, each streaming sensor readings (`EQ-0001`…); assigned to lines round-robin."""
    line_count: int = Field(default=4, ge=0, le=99)
    """Production lines, each reporting production events (`LINE-01`…)."""
    product_count: int = Field(default=6, ge=0, le=999)
    """Products, each being quality-tested (`PRD-001`…); product i is made on line i mod lines."""
    sensor_interval_ms: float = Field(default=1000, ge=1)
    """Milliseconds between two readings of one machine."""
    production_interval_ms: float = Field(default=1000, ge=1)
    """Milliseconds between two production events of one line (each reports a 15-minute window)."""
    quality_interval_ms: float = Field(default=1000, ge=1)
    """Milliseconds between two quality tests of one product."""
    jitter: float = Field(default=0.1, ge=0, le=1)
    """Random spread of each interval as a fraction of it (0.1 → ±10 %); the mean rate is kept."""
    anomaly_rate: float = Field(default=0.01, ge=0, le=1)
    """Fraction of sensor readings carrying an injected anomaly (IS_ANOMALY = true)."""
    database: Identifier = "MANUFACTURING_DEMO"
    """Database of the target tables."""
    schema_: Identifier = Field(default="RAW_DATA", alias="schema")
    """Schema of the target tables."""
    sensor_table: Identifier = "SENSOR_DATA_RAW"
    """Table receiving sensor readings."""
    production_table: Identifier = "PRODUCTION_DATA_RAW"
    """Table receiving production events."""
    quality_table: Identifier = "QUALITY_DATA_RAW"
    """Table receiving quality test results."""
    id_prefix: IdPrefix = ""
    """Prepended to producer names (and so to EVENT_IDs): give each plant writing the same tables
    its own prefix, e.g. "plant2-", so their event ids never collide."""


class ManufacturingSource(SyntheticSource[ManufacturingSourceConfig]):
    """The synthetic plant as a `Source`."""

    def plan(self) -> list[Producer]:
        """One producer per machine, line and product."""
        c = self.config
        sensor, production, quality = c.tables()
        plan: list[Producer] = []
        lines = [line_id(i) for i in range(c.line_count)]
        for i in range(c.equipment_count):
            line = lines[i % len(lines)] if lines else None
            producer = f"{c.id_prefix}sensor-{equipment_id(i)}"
            rng = producer_rng(c.seed, producer)
            model = SensorModel(rng, i, line, c.anomaly_rate)
            plan.append(Producer(producer, sensor, c.sensor_interval_ms / 1000, model, rng))
        for j, line in enumerate(lines):
            producer = f"{c.id_prefix}production-{line}"
            rng = producer_rng(c.seed, producer)
            # Line j makes the products i with i mod lines == j (the same rule quality uses).
            made = [product_id(i) for i in range(c.product_count) if i % len(lines) == j]
            prod_model = ProductionModel(rng, j, made)
            plan.append(
                Producer(producer, production, c.production_interval_ms / 1000, prod_model, rng)
            )
        for i in range(c.product_count):
            producer = f"{c.id_prefix}quality-{product_id(i)}"
            rng = producer_rng(c.seed, producer)
            q_model = QualityModel(rng, i, lines[i % len(lines)] if lines else None)
            plan.append(Producer(producer, quality, c.quality_interval_ms / 1000, q_model, rng))
        return plan
