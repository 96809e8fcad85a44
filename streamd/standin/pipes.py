"""Classic Snowpipe objects: `CREATE PIPE … AS COPY INTO … FROM @stage`, their load history and status.

Reference §3 and §5.7. A pipe and its load history live in its database's hidden schema, so the
history (which files were loaded: Snowpipe's dedupe by file name, kept 14 days) is committed in the
same DuckDB transaction as the rows a file brought, and survives a stand-in restart.
"""

# ruff: noqa: S608 - identifiers in f-strings go through quote(); every value is a bound parameter.
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamd.standin.duck import HIDDEN_SCHEMA, Cursor, execute, now_ms, quote
from streamd.standin.stages import StageError, parse_stage_ref

LOAD_HISTORY_DAYS = 14
"""Snowpipe keeps load metadata for 14 days: a file loaded within them is skipped when resubmitted."""
STATUSES = ("LOAD_IN_PROGRESS", "LOADED", "LOAD_FAILED", "PARTIALLY_LOADED")

_IDENT = r'(?:"[^"]+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"
_CREATE_RE = re.compile(
    rf"^\s*CREATE\s+(?P<replace>OR\s+REPLACE\s+)?PIPE\s+(?P<ifnot>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})(?P<props>.*?)\s+AS\s+COPY\s+INTO\s+(?P<table>{_NAME})\s*"
    rf"(?P<columns>\([^)]*\)\s*)?FROM\s+(?P<source>\S+)(?P<options>.*?);?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_OPTION_RE = re.compile(
    r"(?P<key>[A-Za-z_]+)\s*=\s*(?P<value>\([^)]*\)|'(?:[^']|'')*'|[^\s,()]+)", re.DOTALL
)


class PipeError(Exception):
    """A pipe statement the stand-in refuses; carries Snowflake's code and SQLSTATE."""

    def __init__(self, code: str, sql_state: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sql_state = sql_state
        self.message = message


@dataclass(frozen=True, slots=True)
class PipeSpec:
    """What a pipe loads and how (the parts of COPY INTO the stand-in implements)."""

    database: str
    schema: str
    name: str
    table: tuple[str, str, str]
    stage: tuple[str, str, str]
    prefix: str
    """Path under the stage named in `FROM @stage/prefix`; submitted paths are relative to it."""
    strip_outer_array: bool
    match_by_column_name: str | None
    """CASE_INSENSITIVE or CASE_SENSITIVE; None loads the whole object into one VARIANT column."""
    on_error: str
    """SKIP_FILE (Snowpipe's default) or CONTINUE."""
    pattern: str | None
    definition: str

    @property
    def qualified(self) -> str:
        """`DB.SCHEMA.PIPE`, the name used in REST paths (case-sensitive, §3)."""
        return f"{self.database}.{self.schema}.{self.name}"

    @property
    def stage_location(self) -> str:
        """What insertReport's `stageLocation` says for an internal stage."""
        return f"@{'.'.join(self.stage)}/{self.prefix}".rstrip("/") + "/"


@dataclass(frozen=True, slots=True)
class CreatePipe:
    """A parsed CREATE PIPE statement."""

    spec: PipeSpec
    or_replace: bool
    if_not_exists: bool


def _ident(part: str) -> str:
    part = part.strip()
    return part[1:-1] if part.startswith('"') else part.upper()


def qualify(name: str, database: str | None, schema: str | None, what: str) -> tuple[str, ...]:
    parts = [_ident(p) for p in re.findall(_IDENT, name)]
    if len(parts) == 3:
        return tuple(parts)
    if len(parts) == 2 and database:
        return (database.upper(), *parts)
    if len(parts) == 1 and database and schema:
        return (database.upper(), schema.upper(), parts[0])
    raise PipeError(
        "090105",
        "22000",
        f"Cannot resolve {what} {name!r}: qualify it as DATABASE.SCHEMA.NAME "
        "or set database and schema on the request.",
    )


def parse_create_pipe(text: str, database: str | None, schema: str | None) -> CreatePipe | None:
    """A CREATE PIPE statement, or None when `text` is not one."""
    if not re.match(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", text, re.IGNORECASE):
        return None
    found = _CREATE_RE.match(text)
    if found is None:
        raise PipeError(
            "001003",
            "42000",
            "SQL compilation error: the stand-in understands CREATE [OR REPLACE] PIPE [IF NOT "
            "EXISTS] p [AUTO_INGEST = FALSE] AS COPY INTO t FROM @stage[/path] FILE_FORMAT = "
            "(TYPE = JSON …) [MATCH_BY_COLUMN_NAME = …] [ON_ERROR = …] [PATTERN = '…']",
        )
    props = {k.upper(): v for k, v in _options(found["props"]).items()}
    if props.get("AUTO_INGEST", "FALSE").upper() == "TRUE":
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: AUTO_INGEST = TRUE needs cloud event "
            "notifications; use AUTO_INGEST = FALSE and insertFiles",
        )
    if found["columns"] or found["source"].startswith("("):
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: COPY transformations; map JSON keys with "
            "MATCH_BY_COLUMN_NAME instead",
        )
    pipe = qualify(found["name"], database, schema, "pipe")
    table = qualify(found["table"], database, schema, "table")
    source = found["source"]
    if not source.startswith("@"):
        raise PipeError("001003", "42000", f"SQL compilation error: {source!r} is not a stage")
    try:
        ref = parse_stage_ref(source, database, schema)
    except StageError as err:
        raise PipeError(err.code, err.sql_state, err.message) from None
    stage, prefix = (ref.database, ref.schema, ref.name), ref.path
    options = {k.upper(): v for k, v in _options(found["options"]).items()}
    file_format = {
        k.upper(): v.upper() for k, v in _options(options.get("FILE_FORMAT", "")).items()
    }
    if file_format.get("TYPE", "").strip("'") != "JSON":
        raise PipeError(
            "000002",
            "0A000",
            "Unsupported feature in the stand-in: only FILE_FORMAT = (TYPE = JSON) is loaded",
        )
    match = options.get("MATCH_BY_COLUMN_NAME", "NONE").upper()
    on_error = options.get("ON_ERROR", "SKIP_FILE").upper().strip("'")
    if on_error == "ABORT_STATEMENT":
        on_error = "SKIP_FILE"  # Snowpipe treats ABORT_STATEMENT as SKIP_FILE (a file at a time)
    if on_error not in ("SKIP_FILE", "CONTINUE"):
        raise PipeError("000002", "0A000", f"Unsupported ON_ERROR = {on_error} in the stand-in")
    pattern = options.get("PATTERN")
    spec = PipeSpec(
        database=pipe[0],
        schema=pipe[1],
        name=pipe[2],
        table=(table[0], table[1], table[2]),
        stage=stage,
        prefix=prefix.strip("/"),
        strip_outer_array=file_format.get("STRIP_OUTER_ARRAY") == "TRUE",
        match_by_column_name=None if match == "NONE" else match,
        on_error=on_error,
        pattern=pattern[1:-1].replace("''", "'") if pattern else None,
        definition=text.strip().rstrip(";"),
    )
    return CreatePipe(spec, bool(found["replace"]), bool(found["ifnot"]))


def _options(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in _OPTION_RE.finditer(text or ""):
        value = m["value"]
        out[m["key"].upper()] = value[1:-1] if value.startswith("(") else value
    return out


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
            FIRST_ERROR_COLUMN_NAME VARCHAR, STATUS VARCHAR NOT NULL)""",
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
        f"INSERT INTO {hidden}.PIPE_LOAD_HISTORY (SCHEMA_NAME, PIPE_NAME, {_HISTORY_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            spec.schema,
            spec.name,
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


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds and Z, as Snowpipe writes times."""
    if ms is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
