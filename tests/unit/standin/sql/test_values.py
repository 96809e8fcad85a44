"""SQL API values: column types and the documented string forms of values."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from streamd.standin.sql.values import column_type, format_value


def test_sql_values() -> None:
    assert format_value(datetime(1970, 1, 2, 0, 0, 1, 500), "timestamp_ntz") == "86401.000500000"
    aware = datetime(1970, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert format_value(aware, "timestamp_ltz") == "0.000000000"
    assert format_value(date(1970, 1, 11), "date") == "10"
    assert format_value(True, "boolean") == "true"
    assert format_value(Decimal("1.50"), "fixed") == "1.50"
    assert format_value(None, "text") is None
    assert column_type("DECIMAL(10,2)") == {"type": "fixed", "precision": 10, "scale": 2}
    assert column_type("TIMESTAMP WITH TIME ZONE")["type"] == "timestamp_ltz"
    assert column_type("JSON")["type"] == "variant"
