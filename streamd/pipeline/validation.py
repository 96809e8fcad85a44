"""Per-table row rules from config: a row that breaks one is dead-lettered, never sent, never lost."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from streamd.rows import Row

_MODEL = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


class ColumnRule(BaseModel):
    """What one column of a row must satisfy."""

    model_config = _MODEL

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


class TableRules(BaseModel):
    """Rules for the rows of one table."""

    model_config = _MODEL

    mode: Literal["streaming", "files"] = "streaming"
    """How the table is delivered: Snowpipe Streaming channels, or gzip NDJSON files through
    classic Snowpipe (see [files]) — for bulk and backfill, minutes rather than seconds."""
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    """Column name (as the row spells it) → its rule."""


def violation(row: Row, rules: TableRules) -> tuple[str, str] | None:
    """The first rule `row` breaks, as (rule name like "TEMPERATURE.max", detail), or None."""
    for column, rule in rules.columns.items():
        value: Any = row.get(column)
        if value is None:
            if rule.required:
                return f"{column}.required", f"{column} is missing or null"
            continue
        if rule.type is not None and (
            not isinstance(value, _TYPES[rule.type])
            or (rule.type in ("number", "integer") and isinstance(value, bool))
        ):
            return f"{column}.type", f"{column} is {type(value).__name__}, not {rule.type}"
        if rule.min is not None and isinstance(value, int | float) and value < rule.min:
            return f"{column}.min", f"{column} = {value} is below {rule.min}"
        if rule.max is not None and isinstance(value, int | float) and value > rule.max:
            return f"{column}.max", f"{column} = {value} is above {rule.max}"
        if rule.allowed is not None and value not in rule.allowed:
            return f"{column}.allowed", f"{column} = {value!r} is not one of {rule.allowed}"
    return None
