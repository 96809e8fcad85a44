"""Where pipes and their load history live: the hidden schema of the pipe's database.

The load history (which files were loaded: Snowpipe's dedupe by file name, kept 14 days) is
committed in the same DuckDB transaction as the rows a file brought, so it survives a stand-in
restart and never disagrees with the table. It also serves INFORMATION_SCHEMA.COPY_HISTORY.
"""

# ruff: noqa: S608 - identifiers in f-strings go through quote(); every value is a bound parameter.
from __future__ import annotations

from typing import Any

from streamd.standin.snowpipe.pipes import (
    CreatePipe,
    PipeError,
    PipeSpec,
    iso_ms,
    parse_create_pipe,
)
from streamd.standin.storage.duck import HIDDEN_SCHEMA, Cursor, execute, now_ms, quote

LOAD_HISTORY_DAYS = 14
"""Snowpipe keeps load metadata for 14 days: a file loaded within them is skipped when resubmitted."""


# ---- persistence (runs on the storage writer thread) -------------------------------------------


def _hidden(db: str) -> str:
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}"


def ensure_tables_sync(cur: Cursor, db: str) -> None:
    """Create the pipe and load-history tables of database `db` if they are missing."""
    hidden = _hidden(db)
    execute(
        cur,
        f"""CREATE TABLE IF NOT EXISTS {hidden}.PIPES (
            SCHEMA_NAME VARCHAR NOT NULL, PIPE_NAME VARCHAR NOT NULL, DEFINITION VARCHAR NOT NULL,
            CREATED_ON_MS BIGINT NOT NULL, PRIMARY KEY (SCHEMA_NAME, PIPE_NAME))""",
    )
    execute(
        cur,
        f"""CREATE TABLE IF NOT EXISTS {hidden}.PIPE_LOAD_HISTORY (
            EVENT_ID BIGINT NOT NULL, SCHEMA_NAME VARCHAR NOT NULL, PIPE_NAME VARCHAR NOT NULL,
            PATH VARCHAR NOT NULL, STAGE_LOCATION VARCHAR, FILE_SIZE BIGINT,
            TIME_RECEIVED_MS BIGINT, LAST_INSERT_TIME_MS BIGINT NOT NULL,
            ROWS_INSERTED BIGINT, ROWS_PARSED BIGINT, ERRORS_SEEN BIGINT, ERROR_LIMIT BIGINT,
            FIRST_ERROR VARCHAR, FIRST_ERROR_LINE BIGINT, FIRST_ERROR_CHARACTER_POS BIGINT,
            FIRST_ERROR_COLUMN_NAME VARCHAR, STATUS VARCHAR NOT NULL,
            TABLE_SCHEMA VARCHAR, TABLE_NAME VARCHAR)""",
    )


def has_tables_sync(cur: Cursor, db: str) -> bool:
    """Whether database `db` has pipe tables yet (readers never create them: one writer)."""
    rows = execute(
        cur,
        "SELECT 1 FROM information_schema.tables WHERE table_catalog = ? AND table_schema = ? "
        "AND table_name = 'PIPE_LOAD_HISTORY'",
        [db, HIDDEN_SCHEMA],
    )
    return bool(rows)


def save_pipe_sync(cur: Cursor, create: CreatePipe) -> bool:
    """Store a pipe (inside the caller's transaction); False when IF NOT EXISTS left one alone."""
    spec = create.spec
    ensure_tables_sync(cur, spec.database)
    hidden = _hidden(spec.database)
    key = [spec.schema, spec.name]
    exists = execute(
        cur, f"SELECT 1 FROM {hidden}.PIPES WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key
    )
    if exists and create.if_not_exists:
        return False
    if exists and not create.or_replace:
        raise PipeError(
            "002002", "42710", f"SQL compilation error: Object '{spec.qualified}' already exists."
        )
    execute(cur, f"DELETE FROM {hidden}.PIPES WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key)
    # A recreated pipe starts with no load history: its files may load again (CREATE PIPE docs).
    execute(
        cur, f"DELETE FROM {hidden}.PIPE_LOAD_HISTORY WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key
    )
    execute(
        cur, f"INSERT INTO {hidden}.PIPES VALUES (?, ?, ?, ?)", [*key, spec.definition, now_ms()]
    )
    return True


def load_pipe_sync(cur: Cursor, db: str, schema: str, name: str) -> PipeSpec | None:
    """A stored pipe's spec, or None."""
    if not has_tables_sync(cur, db):
        return None
    rows = execute(
        cur,
        f"SELECT DEFINITION FROM {_hidden(db)}.PIPES WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?",
        [schema, name],
    )
    if not rows:
        return None
    parsed = parse_create_pipe(str(rows[0][0]), db, schema)
    return parsed.spec if parsed is not None else None


def drop_pipe_sync(cur: Cursor, db: str, schema: str, name: str) -> bool:
    """Remove a pipe and its history; False when there was none."""
    if not has_tables_sync(cur, db):
        return False
    hidden = _hidden(db)
    key = [schema, name]
    found = execute(
        cur, f"SELECT 1 FROM {hidden}.PIPES WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key
    )
    execute(cur, f"DELETE FROM {hidden}.PIPES WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key)
    execute(
        cur, f"DELETE FROM {hidden}.PIPE_LOAD_HISTORY WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?", key
    )
    return bool(found)


_HISTORY_COLUMNS = (
    "EVENT_ID, PATH, STAGE_LOCATION, FILE_SIZE, TIME_RECEIVED_MS, LAST_INSERT_TIME_MS, "
    "ROWS_INSERTED, ROWS_PARSED, ERRORS_SEEN, ERROR_LIMIT, FIRST_ERROR, FIRST_ERROR_LINE, "
    "FIRST_ERROR_CHARACTER_POS, FIRST_ERROR_COLUMN_NAME, STATUS"
)


def already_loaded_sync(cur: Cursor, spec: PipeSpec, path: str) -> bool:
    """Whether `path` loaded (fully or partly) through this pipe within the last 14 days."""
    since = now_ms() - LOAD_HISTORY_DAYS * 86_400_000
    rows = execute(
        cur,
        f"SELECT 1 FROM {_hidden(spec.database)}.PIPE_LOAD_HISTORY WHERE SCHEMA_NAME = ? "
        "AND PIPE_NAME = ? AND PATH = ? AND STATUS IN ('LOADED', 'PARTIALLY_LOADED') "
        "AND LAST_INSERT_TIME_MS >= ? LIMIT 1",
        [spec.schema, spec.name, path, since],
    )
    return bool(rows)


def record_load_sync(cur: Cursor, spec: PipeSpec, event: dict[str, Any]) -> None:
    """Append one load event (call inside the transaction that inserted the file's rows)."""
    hidden = _hidden(spec.database)
    (last,) = execute(cur, f"SELECT coalesce(max(EVENT_ID), 0) FROM {hidden}.PIPE_LOAD_HISTORY")[0]
    execute(
        cur,
        f"INSERT INTO {hidden}.PIPE_LOAD_HISTORY (SCHEMA_NAME, PIPE_NAME, TABLE_SCHEMA, TABLE_NAME, "
        f"{_HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            spec.schema,
            spec.name,
            spec.table[1],
            spec.table[2],
            int(last) + 1,
            event["path"],
            spec.stage_location,
            event["fileSize"],
            event["timeReceived"],
            event["lastInsertTime"],
            event["rowsInserted"],
            event["rowsParsed"],
            event["errorsSeen"],
            event["errorLimit"],
            event.get("firstError"),
            event.get("firstErrorLineNum"),
            event.get("firstErrorCharacterPos"),
            event.get("firstErrorColumnName"),
            event["status"],
        ],
    )


def history_sync(
    cur: Cursor,
    spec: PipeSpec,
    *,
    after_event: int = 0,
    since_ms: int,
    until_ms: int | None = None,
    limit: int = 10_000,
) -> list[tuple[int, dict[str, Any]]]:
    """Load events after `after_event`, inserted in [since_ms, until_ms), oldest first."""
    if not has_tables_sync(cur, spec.database):
        return []
    sql = (
        f"SELECT {_HISTORY_COLUMNS} FROM {_hidden(spec.database)}.PIPE_LOAD_HISTORY "
        "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND EVENT_ID > ? AND LAST_INSERT_TIME_MS >= ?"
    )
    params: list[object] = [spec.schema, spec.name, after_event, since_ms]
    if until_ms is not None:
        sql += " AND LAST_INSERT_TIME_MS < ?"
        params.append(until_ms)
    rows = execute(cur, sql + " ORDER BY EVENT_ID LIMIT ?", [*params, limit])
    return [(int(r[0]), _event(r)) for r in rows]


def missed_sync(cur: Cursor, spec: PipeSpec, after_event: int, since_ms: int) -> bool:
    """Whether events after `after_event` fell out of the window before `since_ms` (a caller that
    polled insertReport too rarely): its result is then incomplete."""
    if after_event <= 0 or not has_tables_sync(cur, spec.database):
        return False
    rows = execute(
        cur,
        f"SELECT 1 FROM {_hidden(spec.database)}.PIPE_LOAD_HISTORY WHERE SCHEMA_NAME = ? "
        "AND PIPE_NAME = ? AND EVENT_ID > ? AND LAST_INSERT_TIME_MS < ? LIMIT 1",
        [spec.schema, spec.name, after_event, since_ms],
    )
    return bool(rows)


def _event(r: tuple[Any, ...]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "path": r[1],
        "stageLocation": r[2],
        "fileSize": r[3],
        "timeReceived": iso_ms(r[4]),
        "lastInsertTime": iso_ms(r[5]),
        "rowsInserted": r[6],
        "rowsParsed": r[7],
        "errorsSeen": r[8],
        "errorLimit": r[9],
        "complete": r[14] != "LOAD_IN_PROGRESS",
        "status": r[14],
    }
    if r[10] is not None:
        event.update(
            firstError=r[10],
            firstErrorLineNum=r[11],
            firstErrorCharacterPos=r[12],
            firstErrorColumnName=r[13],
        )
    return event


def last_ingested_sync(cur: Cursor, spec: PipeSpec) -> tuple[int, str] | None:
    """(time ms, path) of the pipe's latest load event, for SYSTEM$PIPE_STATUS."""
    if not has_tables_sync(cur, spec.database):
        return None
    rows = execute(
        cur,
        f"SELECT LAST_INSERT_TIME_MS, PATH FROM {_hidden(spec.database)}.PIPE_LOAD_HISTORY "
        "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? ORDER BY EVENT_ID DESC LIMIT 1",
        [spec.schema, spec.name],
    )
    return (int(rows[0][0]), str(rows[0][1])) if rows else None


_COPY_STATUS = (
    "CASE STATUS WHEN 'LOADED' THEN 'Loaded' WHEN 'LOAD_FAILED' THEN 'Load failed' "
    "WHEN 'PARTIALLY_LOADED' THEN 'Partially loaded' ELSE 'Load in progress' END"
)
_COPY_COLUMNS = (
    "PATH AS FILE_NAME, STAGE_LOCATION, make_timestamptz(LAST_INSERT_TIME_MS * 1000) AS "
    "LAST_LOAD_TIME, ROWS_INSERTED AS ROW_COUNT, ROWS_PARSED AS ROW_PARSED, FILE_SIZE, "
    "FIRST_ERROR AS FIRST_ERROR_MESSAGE, FIRST_ERROR_LINE AS FIRST_ERROR_LINE_NUMBER, "
    "FIRST_ERROR_CHARACTER_POS, FIRST_ERROR_COLUMN_NAME, ERRORS_SEEN AS ERROR_COUNT, ERROR_LIMIT, "
    f"{_COPY_STATUS} AS STATUS, '{{db}}' AS TABLE_CATALOG_NAME, TABLE_SCHEMA AS TABLE_SCHEMA_NAME, "
    "TABLE_NAME, '{db}' AS PIPE_CATALOG_NAME, SCHEMA_NAME AS PIPE_SCHEMA_NAME, PIPE_NAME, "
    "make_timestamptz(TIME_RECEIVED_MS * 1000) AS PIPE_RECEIVED_TIME"
)


def copy_history_sql(cur: Cursor, db: str, args: dict[str, str]) -> str:
    """DuckDB SQL for `TABLE(db.INFORMATION_SCHEMA.COPY_HISTORY(TABLE_NAME => …, START_TIME =>
    …[, END_TIME => …]))`: the pipes' load events of one table (`args` are DuckDB expressions)."""
    if "TABLE_NAME" not in args or "START_TIME" not in args:
        raise PipeError(
            "001003", "42000", "SQL compilation error: COPY_HISTORY needs TABLE_NAME and START_TIME"
        )
    source = f"{_hidden(db)}.PIPE_LOAD_HISTORY"
    if not has_tables_sync(cur, db):
        # No pipe ever ran in this database: the same columns, no rows.
        source = f"(SELECT * FROM (SELECT {', '.join(_EMPTY)}) WHERE false)"
    name = f"upper({args['TABLE_NAME']})"
    where = [
        # TABLE_NAME is 'SCHEMA.TABLE' or a bare table name (then any schema matches: tolerant).
        f"({name} = TABLE_SCHEMA || '.' || TABLE_NAME OR {name} = TABLE_NAME)",
        f"make_timestamptz(LAST_INSERT_TIME_MS * 1000) >= {args['START_TIME']}",
    ]
    if "END_TIME" in args:
        where.append(f"make_timestamptz(LAST_INSERT_TIME_MS * 1000) < {args['END_TIME']}")
    return (
        f"SELECT {_COPY_COLUMNS.format(db=db)} FROM {source} WHERE {' AND '.join(where)} "
        "ORDER BY LAST_INSERT_TIME_MS"
    )


_EMPTY = (
    "NULL::VARCHAR AS PATH, NULL::VARCHAR AS STAGE_LOCATION, NULL::BIGINT AS LAST_INSERT_TIME_MS",
    "NULL::BIGINT AS ROWS_INSERTED, NULL::BIGINT AS ROWS_PARSED, NULL::BIGINT AS FILE_SIZE",
    "NULL::VARCHAR AS FIRST_ERROR, NULL::BIGINT AS FIRST_ERROR_LINE",
    "NULL::BIGINT AS FIRST_ERROR_CHARACTER_POS, NULL::VARCHAR AS FIRST_ERROR_COLUMN_NAME",
    "NULL::BIGINT AS ERRORS_SEEN, NULL::BIGINT AS ERROR_LIMIT, NULL::VARCHAR AS STATUS",
    "NULL::VARCHAR AS TABLE_SCHEMA, NULL::VARCHAR AS TABLE_NAME, NULL::VARCHAR AS SCHEMA_NAME",
    "NULL::VARCHAR AS PIPE_NAME, NULL::BIGINT AS TIME_RECEIVED_MS",
)
