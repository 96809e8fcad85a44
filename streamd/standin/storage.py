"""DuckDB storage: one file per Snowflake database, one writer thread, cursors for readers.

Snowflake database X lives in `<data_dir>/X.duckdb`, ATTACHed as X so `DB.SCHEMA.TABLE` names work.
DuckDB cannot write two attached files in one transaction, so the stand-in's own bookkeeping for X
(channels, error table) lives in X's hidden schema `_STANDIN` and is committed in the same
transaction as the rows it describes: `last_committed_offset_token` is always read back from the
database, never from what was acknowledged (local-target-notes §1.3).
"""

# ruff: noqa: S608 - identifiers in f-strings go through quote(); every value is a bound parameter.
from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import duckdb
import orjson
import pyarrow as pa
import sqlglot
from sqlglot.errors import SqlglotError

from streamd.standin.ddl import (
    CreateDatabase,
    DdlError,
    RunSql,
    TableSpec,
    plan_file,
    spec_from_duckdb,
    sql_files,
)
from streamd.standin.ingest import ParsedRows, RejectedRow

T = TypeVar("T")
Cursor = duckdb.DuckDBPyConnection

HIDDEN_SCHEMA = "_STANDIN"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_STATUS_COLUMNS = (
    "CHANNEL_NAME, CLIENT_SEQ, ROW_SEQ, COMMITTED_OFFSET_TOKEN, ROWS_INSERTED, ROWS_PARSED, "
    "ROWS_ERROR_COUNT, LAST_ERROR_MESSAGE, LAST_ERROR_OFFSET_UPPER_BOUND, LAST_ERROR_TIMESTAMP_MS, "
    "CREATED_ON_MS, AVG_LATENCY_MS"
)


class StandinBusyError(RuntimeError):
    """Another process (usually a running stand-in) holds the DuckDB files of a data dir."""


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """One channel's persisted state, as read from `<DB>._STANDIN.CHANNELS`."""

    channel_name: str
    client_seq: int
    row_seq: int
    committed_offset_token: str | None
    rows_inserted: int
    rows_parsed: int
    rows_error_count: int
    last_error_message: str | None
    last_error_offset_upper_bound: str | None
    last_error_timestamp_ms: int | None
    created_on_ms: int
    avg_latency_ms: int


@dataclass(frozen=True, slots=True)
class Commit:
    """One appended batch on its way into its table, with the channel it advances."""

    table: TableSpec
    pipe: str
    channel: str
    rows: ParsedRows
    start_offset: str | None
    end_offset: str | None
    client_seq: int
    row_seq: int
    appended_at: float
    """`time.monotonic()` at append, for `snowflake_avg_processing_latency_ms`."""


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return int(time.time() * 1000)


def quote(name: str) -> str:
    """A DuckDB-quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


class Storage:
    """The DuckDB instance behind the stand-in. Create and use it inside the event loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._con = duckdb.connect(":memory:")
        # Every mutation runs on this cursor through a one-slot limiter: a single writer keeps
        # transactions free of write conflicts (local-target-notes §1.2, §8).
        self._writer = self._con.cursor()
        self._limiter = anyio.CapacityLimiter(1)
        self.databases: set[str] = set()

    async def write(self, fn: Callable[[Cursor], T]) -> T:
        """Run `fn(writer_cursor)` on the single writer thread."""
        return await anyio.to_thread.run_sync(fn, self._writer, limiter=self._limiter)

    async def read(self, fn: Callable[[Cursor], T]) -> T:
        """Run `fn(cursor)` on a fresh read cursor in a worker thread (sees committed data)."""
        return await anyio.to_thread.run_sync(functools.partial(self._with_cursor, fn))

    def _with_cursor(self, fn: Callable[[Cursor], T]) -> T:
        cur = self._con.cursor()
        try:
            return fn(cur)
        finally:
            cur.close()

    def close(self) -> None:
        """Checkpoint every database file and close the instance (sync; call at shutdown)."""
        for name in sorted(self.databases):
            # A failed checkpoint is harmless: the WAL is replayed at the next open.
            with contextlib.suppress(duckdb.Error):
                _exec(self._writer, f"CHECKPOINT {quote(name)}")
            # Detach explicitly so the file lock is gone when close() returns, even while Python
            # still holds stray cursor objects (a restart in the same process re-attaches it).
            with contextlib.suppress(duckdb.Error):
                _exec(self._writer, f"DETACH {quote(name)}")
        self._writer.close()
        self._con.close()

    def attach_existing_sync(self, cur: Cursor) -> None:
        """Attach every database file already in the data dir (state survives restarts)."""
        for path in sorted(self.data_dir.glob("*.duckdb")):
            self.attach_sync(cur, path.stem)

    def attach_sync(self, cur: Cursor, name: str) -> None:
        """ATTACH `<data_dir>/<NAME>.duckdb` as NAME and create its hidden bookkeeping schema."""
        name = name.upper()
        if not _NAME_RE.match(name):
            raise DdlError(f"database name {name!r} is not a plain identifier")
        if name in self.databases:
            return
        path = self.data_dir / f"{name}.duckdb"
        try:
            _exec(cur, f"ATTACH IF NOT EXISTS '{path}' AS {quote(name)}")
        except duckdb.IOException as err:
            raise StandinBusyError(_busy_message(self.data_dir, err)) from err
        hidden = f"{quote(name)}.{quote(HIDDEN_SCHEMA)}"
        _exec(cur, f"CREATE SCHEMA IF NOT EXISTS {hidden}")
        _exec(
            cur,
            f"""CREATE TABLE IF NOT EXISTS {hidden}.CHANNELS (
                SCHEMA_NAME VARCHAR NOT NULL, PIPE_NAME VARCHAR NOT NULL,
                CHANNEL_NAME VARCHAR NOT NULL, CLIENT_SEQ BIGINT NOT NULL, ROW_SEQ BIGINT NOT NULL,
                COMMITTED_OFFSET_TOKEN VARCHAR, ROWS_INSERTED BIGINT NOT NULL DEFAULT 0,
                ROWS_PARSED BIGINT NOT NULL DEFAULT 0, ROWS_ERROR_COUNT BIGINT NOT NULL DEFAULT 0,
                LAST_ERROR_MESSAGE VARCHAR, LAST_ERROR_OFFSET_UPPER_BOUND VARCHAR,
                LAST_ERROR_TIMESTAMP_MS BIGINT, CREATED_ON_MS BIGINT NOT NULL,
                AVG_LATENCY_MS BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (SCHEMA_NAME, PIPE_NAME, CHANNEL_NAME))""",
        )
        # Columns of Snowflake's ERROR_TABLE(t) (§2.12), plus which table the row was meant for,
        # since one error table serves the whole database here.
        _exec(
            cur,
            f"""CREATE TABLE IF NOT EXISTS {hidden}.ERROR_TABLE (
                "TIMESTAMP" TIMESTAMPTZ, QUERY_ID VARCHAR, TABLE_SCHEMA VARCHAR,
                TABLE_NAME VARCHAR, ERROR_CODE VARCHAR, ERROR_METADATA JSON, ERROR_DATA JSON)""",
        )
        self.databases.add(name)

    def apply_sql_dirs_sync(self, cur: Cursor, sql_dirs: Sequence[Path]) -> list[TableSpec]:
        """Run the DDL files of `sql_dirs` (sorted order); returns the tables they declare."""
        tables: list[TableSpec] = []
        for path in sql_files(sql_dirs):
            for action in plan_file(path):
                if isinstance(action, CreateDatabase):
                    self.attach_sync(cur, action.name)
                    continue
                self._run_ddl(cur, path, action)
                if action.table is not None:
                    tables.append(action.table)
        return tables

    def _run_ddl(self, cur: Cursor, path: Path, action: RunSql) -> None:
        if action.table is not None and action.table.database.upper() not in self.databases:
            raise DdlError(
                f"{path}: database {action.table.database} was not created: {action.sql}"
            )
        try:
            _exec(cur, action.sql)
        except duckdb.Error as err:
            raise DdlError(f"{path}: DuckDB rejected {action.sql!r}: {err}") from err

    # ---- channels --------------------------------------------------------------------------

    def open_channel_sync(
        self, cur: Cursor, db: str, schema: str, pipe: str, channel: str, offset: str | None
    ) -> ChannelRow:
        """Create the channel or bump its client sequencer; returns the state after the bump."""
        table = _channels(db)
        key = [schema, pipe, channel]
        _exec(cur, "BEGIN")
        try:
            row = _exec(
                cur,
                f"SELECT CLIENT_SEQ FROM {table} "
                "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
                key,
            )
            if not row:
                _exec(
                    cur,
                    f"INSERT INTO {table} (SCHEMA_NAME, PIPE_NAME, CHANNEL_NAME, CLIENT_SEQ, "
                    "ROW_SEQ, COMMITTED_OFFSET_TOKEN, CREATED_ON_MS) VALUES (?, ?, ?, 1, 0, ?, ?)",
                    [*key, offset, now_ms()],
                )
            else:
                # Re-open: new client sequencer, row sequencer restarts with it (§2.11).
                _exec(
                    cur,
                    f"UPDATE {table} SET CLIENT_SEQ = CLIENT_SEQ + 1, ROW_SEQ = 0, "
                    "COMMITTED_OFFSET_TOKEN = CASE WHEN ? IS NULL THEN COMMITTED_OFFSET_TOKEN "
                    "ELSE ? END WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
                    [offset, offset, *key],
                )
            state = _read_channels(cur, db, schema, pipe, [channel])[channel]
            _exec(cur, "COMMIT")
        except BaseException:
            _exec(cur, "ROLLBACK")
            raise
        return state

    def drop_channel_sync(self, cur: Cursor, db: str, schema: str, pipe: str, channel: str) -> None:
        """Remove the channel and its offset token (§2.9)."""
        _exec(
            cur,
            f"DELETE FROM {_channels(db)} "
            "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
            [schema, pipe, channel],
        )

    @staticmethod
    def read_channels_sync(
        cur: Cursor, db: str, schema: str, pipe: str, channels: Sequence[str]
    ) -> dict[str, ChannelRow]:
        """The persisted state of the named channels that exist."""
        return _read_channels(cur, db, schema, pipe, channels)

    def commit_sync(self, cur: Cursor, db: str, commits: Sequence[Commit]) -> None:
        """Group-commit batches of one database in one transaction.

        If the group fails (a value DuckDB refuses despite validation), each batch is retried on
        its own, and a batch that still fails is recorded as all-rejected: its offset advances and
        the request is never failed after the fact (ON_ERROR = CONTINUE, §2.12).
        """
        try:
            _in_transaction(cur, db, commits, None)
            return
        except duckdb.Error:
            pass
        for commit in commits:
            try:
                _in_transaction(cur, db, [commit], None)
            except duckdb.Error as err:
                _in_transaction(cur, db, [commit], f"DuckDB rejected the batch: {err}")

    def table_spec_sync(self, cur: Cursor, db: str, schema: str, table: str) -> TableSpec | None:
        """A table's columns from DuckDB's catalog (tables created after start-up)."""
        rows = _exec(
            cur,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [db, schema, table],
        )
        if not rows:
            return None
        return spec_from_duckdb(db, schema, table, rows)


def _exec(cur: Cursor, sql: str, params: Sequence[object] | None = None) -> list[tuple[Any, ...]]:
    """Execute and drain: DuckDB 2.0 refuses new work while a result (even an INSERT count) is
    unfinished on the connection."""
    result = cur.execute(sql, params) if params is not None else cur.execute(sql)
    return result.fetchall() if result.description else []


def _channels(db: str) -> str:
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}.CHANNELS"


def _read_channels(
    cur: Cursor, db: str, schema: str, pipe: str, channels: Sequence[str]
) -> dict[str, ChannelRow]:
    if not channels:
        return {}
    marks = ", ".join("?" for _ in channels)
    rows = _exec(
        cur,
        f"SELECT {_STATUS_COLUMNS} FROM {_channels(db)} "
        f"WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME IN ({marks})",
        [schema, pipe, *channels],
    )
    return {r[0]: ChannelRow(*r) for r in rows}


def _in_transaction(
    cur: Cursor, db: str, commits: Sequence[Commit], reject_all: str | None
) -> None:
    _exec(cur, "BEGIN")
    try:
        for commit in commits:
            _apply(cur, db, commit, reject_all)
        _exec(cur, "COMMIT")
    except BaseException:
        _exec(cur, "ROLLBACK")
        raise


def _apply(cur: Cursor, db: str, commit: Commit, reject_all: str | None) -> None:
    spec = commit.table
    current = _exec(
        cur,
        f"SELECT CLIENT_SEQ FROM {_channels(db)} "
        "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
        [spec.schema, commit.pipe, commit.channel],
    )
    if not current or current[0][0] != commit.client_seq:
        # Reopened or dropped after this batch was appended: the batch is discarded (§2.5). The
        # check runs on the writer, serialised with the reopen's bump, so it cannot race it.
        return
    rows = commit.rows
    rejected = list(rows.rejected)
    inserted = rows.good_count
    if reject_all is not None:
        rejected += [
            RejectedRow("100069", reject_all, None, orjson.dumps(r).decode(), "json")
            for r in (rows.good.to_pylist() if rows.good is not None else [])
        ]
        inserted = 0
    elif rows.good is not None:
        target = f"{quote(db)}.{quote(spec.schema)}.{quote(spec.name)}"
        names = [quote(n) for n in rows.good.column_names]
        kinds = {c.name: c.kind for c in spec.columns}
        select = [
            f"CAST({quote(n)} AS JSON)"
            if kinds.get(n) in ("variant", "object", "array")
            else quote(n)
            for n in rows.good.column_names
        ]
        cur.register("_standin_batch", rows.good)
        try:
            _exec(
                cur,
                f"INSERT INTO {target} ({', '.join(names)}) "
                f"SELECT {', '.join(select)} FROM _standin_batch",
            )
        finally:
            cur.unregister("_standin_batch")
    if rejected:
        _insert_errors(cur, db, commit, rejected)
    latency = int((time.monotonic() - commit.appended_at) * 1000)
    sets = [
        "COMMITTED_OFFSET_TOKEN = COALESCE(?, COMMITTED_OFFSET_TOKEN)",
        "ROW_SEQ = ?",
        "ROWS_INSERTED = ROWS_INSERTED + ?",
        "ROWS_PARSED = ROWS_PARSED + ?",
        "ROWS_ERROR_COUNT = ROWS_ERROR_COUNT + ?",
        "AVG_LATENCY_MS = CASE WHEN ROWS_PARSED = 0 THEN ? ELSE (AVG_LATENCY_MS * 4 + ?) // 5 END",
    ]
    params: list[Any] = [commit.end_offset, commit.row_seq, inserted, rows.parsed, len(rejected)]
    params += [latency, latency]
    if rejected:
        # The last bad row sits at or before the batch's end offset (§2.5).
        sets += [
            "LAST_ERROR_MESSAGE = ?",
            "LAST_ERROR_OFFSET_UPPER_BOUND = ?",
            "LAST_ERROR_TIMESTAMP_MS = ?",
        ]
        params += [rejected[-1].message, commit.end_offset, now_ms()]
    _exec(
        cur,
        f"UPDATE {_channels(db)} SET {', '.join(sets)} "
        "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
        [*params, spec.schema, commit.pipe, commit.channel],
    )


def _insert_errors(cur: Cursor, db: str, commit: Commit, rejected: list[RejectedRow]) -> None:
    spec = commit.table
    ts = pa.scalar(now_ms() * 1000, pa.timestamp("us", tz="UTC"))
    metadata = [
        orjson.dumps(
            {
                "service": "snowpipe_streaming",
                "details": {
                    "pipe_name": f"{spec.database}.{spec.schema}.{commit.pipe}",
                    "channel_name": commit.channel,
                    "offset_token_lower_bound": commit.start_offset,
                    "offset_token_upper_bound": commit.end_offset,
                    "error_data_truncated": False,
                    "error_data_content_type": r.content_type,
                },
                "error_message": r.message,
                "error_source": r.source,
            }
        ).decode()
        for r in rejected
    ]
    n = len(rejected)
    batch = pa.table(
        {
            "ts": pa.array([ts.as_py()] * n, pa.timestamp("us", tz="UTC")),
            "schema": [spec.schema] * n,
            "tbl": [spec.name] * n,
            "code": [r.error_code for r in rejected],
            "meta": metadata,
            # error_data:$1 holds the original payload (§2.12).
            "data": [f'{{"$1": {r.data}}}' for r in rejected],
        }
    )
    cur.register("_standin_errors", batch)
    try:
        _exec(
            cur,
            f"INSERT INTO {quote(db)}.{quote(HIDDEN_SCHEMA)}.ERROR_TABLE "
            "SELECT ts, NULL, schema, tbl, code, CAST(meta AS JSON), CAST(data AS JSON) "
            "FROM _standin_errors",
        )
    finally:
        cur.unregister("_standin_errors")


def _busy_message(data_dir: Path, err: Exception) -> str:
    return (
        f"the stand-in data dir {data_dir} is in use by another process (is a stand-in or "
        f"daemon running? query it through its SQL API instead): {err}"
    )


def query_offline(data_dir: Path, statement: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """Run one Snowflake-dialect statement over a stopped stand-in's files, read-only.

    Raises StandinBusyError when another process holds the files (DuckDB allows no reader
    next to a writer process, local-target-notes §0 item 4).
    """
    try:
        sql = sqlglot.transpile(statement, read="snowflake", write="duckdb")
    except SqlglotError as err:
        raise ValueError(f"cannot parse statement: {err}") from err
    if len(sql) != 1:
        raise ValueError("query_offline runs exactly one statement")
    con = duckdb.connect(":memory:")
    try:
        for path in sorted(data_dir.glob("*.duckdb")):
            try:
                con.execute(f"ATTACH '{path}' AS {quote(path.stem.upper())} (READ_ONLY)")
            except duckdb.IOException as err:
                raise StandinBusyError(_busy_message(data_dir, err)) from err
        cur = con.execute(sql[0])
        columns = [d[0] for d in cur.description or []]
        return columns, [tuple(r) for r in cur.fetchall()]
    finally:
        con.close()
