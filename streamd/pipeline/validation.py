"""Check a row against its table's `[tables]` rules; a row that breaks one is dead-lettered."""

from __future__ import annotations

from typing import Any

from streamd.config.tables import TableRules
from streamd.rows import Row

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


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
