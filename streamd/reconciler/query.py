"""What every check shares: the SQL seam, result rows keyed by lower-case column, and value parsing."""

from __future__ import annotations

import fnmatch
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from streamd.errors import StreamdError
from streamd.reconciler.report import Finding, Severity
from streamd.snowflake.sql_api import ResultSet

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.IGNORECASE)
_UNITS = {
    "second": 1,
    "seconds": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86_400,
    "days": 86_400,
    "d": 86_400,
}


class SqlRunner(Protocol):
    """The part of `SqlApiClient` the checks use (tests pass the real client over a mock transport)."""

    async def execute(self, statement: str, *, timeout_s: int = 60) -> ResultSet:
        """Run one statement and return its rows."""
        ...


async def rows(sql: SqlRunner, statement: str, timeout_s: int) -> list[dict[str, Any]]:
    """Run `statement`; rows as dicts keyed by lower-case column name (SHOW output is lower case,
    INFORMATION_SCHEMA upper case: §4.9), values parsed by their `rowType`."""
    result = await sql.execute(statement, timeout_s=timeout_s)
    return [{k.lower(): v for k, v in record.items()} for record in result.records()]


async def rows_or_finding(
    sql: SqlRunner,
    statement: str,
    timeout_s: int,
    findings: list[Finding],
    check: str,
    obj: str,
) -> list[dict[str, Any]] | None:
    """`rows`, or None after adding a `query_failed` finding: a failing query is a finding, not a crash."""
    try:
        return await rows(sql, statement, timeout_s)
    except StreamdError as exc:
        findings.append(query_failed(check, obj, statement, exc))
        return None


def query_failed(check: str, obj: str, statement: str, exc: StreamdError) -> Finding:
    """A statement a check needed failed: a warning about the check itself, never a crash."""
    return Finding(
        check=check,
        severity="warning",
        object=obj,
        message=f"could not run `{_preview(statement)}`: {exc}",
        action="check that the object exists and the role has MONITOR (or OWNERSHIP) on it",
        failed_query=True,
    )


def ident(name: str) -> str:
    """An identifier as SQL text: bare when it is a plain name, double-quoted otherwise."""
    return name if _IDENT.match(name) else '"' + name.replace('"', '""') + '"'


def qualified(name: str) -> str:
    """DB.SCHEMA.NAME with each part quoted as needed."""
    return ".".join(ident(part) for part in name.split("."))


def literal(text: str) -> str:
    """A single-quoted SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def full_name(row: dict[str, Any]) -> str:
    """DB.SCHEMA.NAME of a SHOW / INFORMATION_SCHEMA row."""
    return f"{row.get('database_name')}.{row.get('schema_name')}.{row.get('name')}"


def ignored(name: str, patterns: list[str]) -> bool:
    """Whether `name` matches one of the `reconciler.ignore` patterns (case-insensitive)."""
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, pattern.upper()) for pattern in patterns)


def interval_s(text: object) -> float | None:
    """Seconds in a schedule or target lag like `1 MINUTE` or `5 minutes`; None for anything else
    (CRON schedules, `DOWNSTREAM`, NULL)."""
    if not isinstance(text, str):
        return None
    found = _INTERVAL.match(text)
    if found is None:
        return None
    unit = _UNITS.get(found.group(2).lower())
    return None if unit is None else float(found.group(1)) * unit


def epoch(value: object) -> float | None:
    """Seconds since the epoch of a parsed SQL API value; naive datetimes are UTC (TIMESTAMP_NTZ),
    text is ISO 8601 or an HTTP date (LIST's `last_modified`)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return aware.timestamp()
    if isinstance(value, str):
        text = value.strip()
        try:
            return epoch(datetime.fromisoformat(text))
        except ValueError:
            pass
        try:
            return epoch(parsedate_to_datetime(text))
        except (TypeError, ValueError, IndexError):
            return None
    return None


def truthy(value: object) -> bool:
    """A SHOW column that may be a BOOLEAN or the text `true`/`false`."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "yes", "1")
    return bool(value)


def graded(value: float, limit: float, critical_factor: float) -> Severity | None:
    """None under `limit`, warning from it, critical from `critical_factor` times it."""
    if value >= limit * critical_factor:
        return "critical"
    if value >= limit:
        return "warning"
    return None


def age_text(seconds: float) -> str:
    """A duration for messages: `45 s`, `12 min`, `3.5 h`, `2.0 d`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def _preview(statement: str, limit: int = 80) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
