"""DuckDB result types and values → the SQL API's `rowType` and `jsonv2` strings (§4.5)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import orjson

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)
_DECIMAL_RE = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "UHUGEINT"}  # fmt: skip


def column_type(duck_type: str) -> dict[str, Any]:
    """The rowType entry (`type`, and precision/scale for numbers) of a DuckDB type name."""
    t = duck_type.upper()
    if match := _DECIMAL_RE.match(t):
        return {"type": "fixed", "precision": int(match[1]), "scale": int(match[2])}
    if t in _INTS:
        return {"type": "fixed", "precision": 38, "scale": 0}
    if t in ("DOUBLE", "FLOAT", "REAL"):
        return {"type": "real"}
    if t == "BOOLEAN":
        return {"type": "boolean"}
    if t.startswith("TIMESTAMP WITH TIME ZONE") or t == "TIMESTAMPTZ":
        return {"type": "timestamp_ltz"}
    if t.startswith("TIMESTAMP"):
        return {"type": "timestamp_ntz"}
    if t == "DATE":
        return {"type": "date"}
    if t.startswith("TIME"):
        return {"type": "time"}
    if t == "JSON":
        return {"type": "variant"}
    if t == "BLOB":
        return {"type": "binary"}
    if t.endswith("[]") or t.startswith("LIST"):
        return {"type": "array"}
    if t.startswith(("STRUCT", "MAP")):
        return {"type": "object"}
    return {"type": "text"}


def format_value(value: Any, kind: str) -> str | None:
    """One value in the SQL API's default string encoding; None stays SQL NULL."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        # Seconds since the epoch with 9 decimals (§4.5); aware values are converted to UTC.
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return _seconds(value - _EPOCH)
    if isinstance(value, date):
        return str((value - _EPOCH_DATE).days)  # DATE → days since the epoch
    if isinstance(value, time):
        return _seconds(timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                                  microseconds=value.microsecond))  # fmt: skip
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _seconds(delta: timedelta) -> str:
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{whole}.{frac:06d}000"
