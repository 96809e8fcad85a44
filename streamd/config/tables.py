"""`[tables]`: per-table delivery mode and row rules (checked by `pipeline/validation.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from streamd.config.base import FrozenModel


class ColumnRule(FrozenModel):
    """What one column of a row must satisfy."""

    required: bool = False
    """The column must be present and not null."""
    type: Literal["string", "number", "integer", "boolean", "object", "array"] | None = None
    """JSON type the value must have (null is allowed unless `required`)."""
    min: float | None = None
    """Smallest allowed number."""
    max: float | None = None
    """Largest allowed number."""
    allowed: list[str | int | float | bool] | None = None
    """The only values allowed."""


class TableRules(FrozenModel):
    """Rules for the rows of one table."""

    mode: Literal["streaming", "files"] = "streaming"
    """How the table is delivered: Snowpipe Streaming channels, or gzip NDJSON files through
    classic Snowpipe (see [files]) — for bulk and backfill, minutes rather than seconds."""
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    """Column name (as the row spells it) → its rule."""
