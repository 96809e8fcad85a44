"""Small DuckDB helpers shared by the storage modules: quoting, draining execute, names."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import duckdb

Cursor = duckdb.DuckDBPyConnection

HIDDEN_SCHEMA = "_STANDIN"


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return int(time.time() * 1000)


def quote(name: str) -> str:
    """A DuckDB-quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def execute(cur: Cursor, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
    """Execute and drain: DuckDB 2.0 refuses new work while a result (even an INSERT count) is
    unfinished on the connection."""
    result = cur.execute(sql, params) if params is not None else cur.execute(sql)
    return result.fetchall() if result.description else []


def channels_table(db: str) -> str:
    """The quoted name of database `db`'s channel bookkeeping table."""
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}.CHANNELS"
