"""Row rules: the first broken rule is named; rows that pass are untouched."""

from __future__ import annotations

import pytest

from streamd.config.tables import ColumnRule, TableRules
from streamd.pipeline.validation import violation

RULES = TableRules(
    columns={
        "EVENT_ID": ColumnRule(required=True, type="string"),
        "TEMPERATURE": ColumnRule(type="number", min=-50, max=500),
        "STATUS": ColumnRule(allowed=["RUNNING", "IDLE"]),
    }
)


@pytest.mark.parametrize(
    ("row", "rule"),
    [
        ({"EVENT_ID": "a", "TEMPERATURE": 20.5, "STATUS": "IDLE"}, None),
        ({"TEMPERATURE": 20.5}, "EVENT_ID.required"),
        ({"EVENT_ID": 7}, "EVENT_ID.type"),
        ({"EVENT_ID": "a", "TEMPERATURE": "hot"}, "TEMPERATURE.type"),
        ({"EVENT_ID": "a", "TEMPERATURE": True}, "TEMPERATURE.type"),
        ({"EVENT_ID": "a", "TEMPERATURE": 501}, "TEMPERATURE.max"),
        ({"EVENT_ID": "a", "TEMPERATURE": -51}, "TEMPERATURE.min"),
        ({"EVENT_ID": "a", "STATUS": "BROKEN"}, "STATUS.allowed"),
        ({"EVENT_ID": "a", "TEMPERATURE": None}, None),
    ],
)
def test_first_broken_rule(row: dict[str, object], rule: str | None) -> None:
    """Each row reports the rule it breaks (or none); null passes unless required."""
    broken = violation(row, RULES)
    assert (broken[0] if broken else None) == rule
