"""Fields every synthetic event carries: its timestamp text and its RAW_PAYLOAD copy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streamd.rows import Row


def timestamp(at: datetime) -> str:
    """`at` (UTC, aware or naive) as ISO-8601 without zone, microsecond precision.

    That is what TIMESTAMP_NTZ takes unambiguously. The producers pass an aware UTC datetime:
    `datetime.fromtimestamp(t, UTC)` is ~0.4 µs, and dropping its zone with `.replace(tzinfo=None)`
    cost another 1.5 µs per row (keyword parsing), so the zone is cut from the text instead.
    """
    text = at.isoformat(timespec="microseconds")
    # "+00:00" is the only suffix a UTC datetime gets; the first 26 characters are the wall time.
    return text[:26] if at.tzinfo is not None else text


def with_payload(row: Row) -> Row:
    """`row` with RAW_PAYLOAD: the whole event under lower-case keys, for replay and schema drift."""
    payload: dict[str, Any] = dict(zip(map(str.lower, row), row.values(), strict=True))
    row["RAW_PAYLOAD"] = payload
    return row
