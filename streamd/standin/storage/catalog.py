"""The hidden catalog of Snowflake objects DuckDB lacks: streams, tasks, dynamic tables, history.

Each database keeps its own objects in its `_STANDIN` schema, so an object's bookkeeping commits in
the same DuckDB transaction (and file) as the data it describes: a stream's offset moves with the
DML that consumed it, a refresh's history row with the refreshed table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from streamd.standin.storage.duck import HIDDEN_SCHEMA, Cursor, execute, quote

_TABLES = {
    "STREAMS": """SCHEMA_NAME VARCHAR NOT NULL, NAME VARCHAR NOT NULL,
        TABLE_SCHEMA VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL, MODE VARCHAR NOT NULL,
        CREATED_ON TIMESTAMPTZ NOT NULL, OFFSET_ON TIMESTAMPTZ NOT NULL, COMMENT VARCHAR,
        PRIMARY KEY (SCHEMA_NAME, NAME)""",
    "TABLE_PARAMS": """SCHEMA_NAME VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL,
        RETENTION_DAYS DOUBLE, MAX_EXTENSION_DAYS DOUBLE,
        PRIMARY KEY (SCHEMA_NAME, TABLE_NAME)""",
    "TABLE_EPOCHS": """SCHEMA_NAME VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL,
        EPOCH BIGINT NOT NULL, PRIMARY KEY (SCHEMA_NAME, TABLE_NAME)""",
    "TASKS": """SCHEMA_NAME VARCHAR NOT NULL, NAME VARCHAR NOT NULL, ID VARCHAR NOT NULL,
        CREATED_ON TIMESTAMPTZ NOT NULL, WAREHOUSE VARCHAR, SCHEDULE VARCHAR,
        PREDECESSORS VARCHAR NOT NULL, STATE VARCHAR NOT NULL, DEFINITION VARCHAR NOT NULL,
        CONDITION VARCHAR, COMMENT VARCHAR, ALLOW_OVERLAPPING BOOLEAN NOT NULL,
        LAST_COMMITTED_ON TIMESTAMPTZ, LAST_SUSPENDED_ON TIMESTAMPTZ,
        LAST_SUSPENDED_REASON VARCHAR, PRIMARY KEY (SCHEMA_NAME, NAME)""",
    "TASK_HISTORY": """QUERY_ID VARCHAR, NAME VARCHAR NOT NULL, SCHEMA_NAME VARCHAR NOT NULL,
        QUERY_TEXT VARCHAR, CONDITION_TEXT VARCHAR, STATE VARCHAR NOT NULL, ERROR_CODE BIGINT,
        ERROR_MESSAGE VARCHAR, SCHEDULED_TIME TIMESTAMPTZ NOT NULL,
        QUERY_START_TIME TIMESTAMPTZ, NEXT_SCHEDULED_TIME TIMESTAMPTZ,
        COMPLETED_TIME TIMESTAMPTZ, ROOT_TASK_ID VARCHAR, GRAPH_VERSION BIGINT, RUN_ID BIGINT,
        RETURN_VALUE VARCHAR, SCHEDULED_FROM VARCHAR, ATTEMPT_NUMBER BIGINT,
        GRAPH_RUN_GROUP_ID VARCHAR""",
    "DYNAMIC_TABLES": """SCHEMA_NAME VARCHAR NOT NULL, NAME VARCHAR NOT NULL,
        CREATED_ON TIMESTAMPTZ NOT NULL, TARGET_LAG VARCHAR NOT NULL, TARGET_LAG_SEC DOUBLE,
        WAREHOUSE VARCHAR, REFRESH_MODE VARCHAR NOT NULL, QUERY VARCHAR NOT NULL,
        STATE VARCHAR NOT NULL, SUSPENDED_ON TIMESTAMPTZ, RESUMED_ON TIMESTAMPTZ,
        DATA_TIMESTAMP TIMESTAMPTZ, COMMENT VARCHAR, PRIMARY KEY (SCHEMA_NAME, NAME)""",
    "DT_REFRESH_HISTORY": """NAME VARCHAR NOT NULL, SCHEMA_NAME VARCHAR NOT NULL,
        STATE VARCHAR NOT NULL, STATE_CODE VARCHAR, STATE_MESSAGE VARCHAR, QUERY_ID VARCHAR,
        DATA_TIMESTAMP TIMESTAMPTZ, REFRESH_START_TIME TIMESTAMPTZ,
        REFRESH_END_TIME TIMESTAMPTZ, COMPLETION_TARGET TIMESTAMPTZ, REFRESH_ACTION VARCHAR,
        REFRESH_TRIGGER VARCHAR, TARGET_LAG_SEC DOUBLE, NUM_INSERTED BIGINT,
        NUM_DELETED BIGINT""",
}

_ADDED = [("TASKS", "SUSPEND_AFTER_FAILURES BIGINT DEFAULT 10")]
"""Columns added after a catalog table first shipped (data dirs created before keep working)."""


def now() -> datetime:
    """The current time, UTC-aware (what every catalog timestamp holds)."""
    return datetime.now(UTC)


def create_sync(cur: Cursor, db: str) -> None:
    """Create database `db`'s object catalog tables if missing (called when it is attached)."""
    for name, columns in _TABLES.items():
        execute(cur, f"CREATE TABLE IF NOT EXISTS {hidden(db, name)} ({columns})")
    for name, column in _ADDED:
        execute(cur, f"ALTER TABLE {hidden(db, name)} ADD COLUMN IF NOT EXISTS {column}")


def hidden(db: str, name: str) -> str:
    """The quoted name of a table in database `db`'s hidden schema."""
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}.{quote(name)}"


def table(db: str, schema: str, name: str) -> str:
    """A quoted three-part name."""
    return f"{quote(db)}.{quote(schema)}.{quote(name)}"


def databases(cur: Cursor) -> list[str]:
    """Attached databases that have an object catalog (user databases)."""
    rows = execute(
        cur,
        "SELECT DISTINCT database_name FROM duckdb_tables() "
        "WHERE schema_name = ? AND table_name = 'STREAMS' ORDER BY 1",
        [HIDDEN_SCHEMA],
    )
    return [str(r[0]) for r in rows]


def records(cur: Cursor, sql: str, params: Sequence[object] = ()) -> list[dict[str, Any]]:
    """Rows of `sql` as dicts keyed by column name."""
    result = cur.execute(sql, list(params))
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def columns_of(cur: Cursor, db: str, schema: str, name: str) -> list[str]:
    """A table's column names in order (empty if it does not exist)."""
    rows = execute(
        cur,
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? "
        "AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [db, schema, name],
    )
    return [str(r[0]) for r in rows]
