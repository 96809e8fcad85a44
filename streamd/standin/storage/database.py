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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import anyio
import duckdb
import sqlglot
from sqlglot.errors import SqlglotError

from streamd.standin.storage.catalog import create_sync as create_object_catalog
from streamd.standin.storage.ddl import (
    CreateDatabase,
    DdlError,
    RunSql,
    TableSpec,
    plan_file,
    spec_from_duckdb,
    sql_files,
)
from streamd.standin.storage.duck import (
    HIDDEN_SCHEMA,
    Cursor,
    channels_table,
    execute,
    now_ms,
    quote,
)

__all__ = ["ChannelLimitError", "ChannelRow", "Cursor", "Storage", "WriteExecutor", "now_ms"]
__all__ += ["quote"]
__all__ += ["StandinBusyError", "query_offline"]

T = TypeVar("T")
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


class WriteExecutor(Protocol):
    """Runs a function on the single writer cursor: `Storage.write`, as others are handed it."""

    async def __call__(self, fn: Callable[[Cursor], T], /) -> T:
        """Run `fn(writer_cursor)` on the writer thread and return its result."""
        ...


class ChannelLimitError(Exception):
    """Opening one more channel would exceed the pipe's channel limit."""


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
                execute(self._writer, f"CHECKPOINT {quote(name)}")
            # Detach explicitly so the file lock is gone when close() returns, even while Python
            # still holds stray cursor objects (a restart in the same process re-attaches it).
            with contextlib.suppress(duckdb.Error):
                execute(self._writer, f"DETACH {quote(name)}")
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
            execute(cur, f"ATTACH IF NOT EXISTS '{path}' AS {quote(name)}")
        except duckdb.IOException as err:
            raise StandinBusyError(_busy_message(self.data_dir, err)) from err
        hidden = f"{quote(name)}.{quote(HIDDEN_SCHEMA)}"
        execute(cur, f"CREATE SCHEMA IF NOT EXISTS {hidden}")
        execute(
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
        execute(
            cur,
            f"""CREATE TABLE IF NOT EXISTS {hidden}.ERROR_TABLE (
                "TIMESTAMP" TIMESTAMPTZ, QUERY_ID VARCHAR, TABLE_SCHEMA VARCHAR,
                TABLE_NAME VARCHAR, ERROR_CODE VARCHAR, ERROR_METADATA JSON, ERROR_DATA JSON)""",
        )
        # Streams, tasks and dynamic tables keep their bookkeeping next to the data (`catalog.py`).
        create_object_catalog(cur, name)
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
            execute(cur, action.sql)
        except duckdb.Error as err:
            raise DdlError(f"{path}: DuckDB rejected {action.sql!r}: {err}") from err

    # ---- channels --------------------------------------------------------------------------

    def open_channel_sync(
        self,
        cur: Cursor,
        db: str,
        schema: str,
        pipe: str,
        channel: str,
        offset: str | None,
        max_channels: int | None = None,
    ) -> ChannelRow:
        """Create the channel or bump its client sequencer; returns the state after the bump.

        Creating one beyond `max_channels` channels on the pipe raises ChannelLimitError.
        """
        table = channels_table(db)
        key = [schema, pipe, channel]
        execute(cur, "BEGIN")
        try:
            row = execute(
                cur,
                f"SELECT CLIENT_SEQ FROM {table} "
                "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
                key,
            )
            if not row:
                if max_channels is not None:
                    (n,) = execute(
                        cur,
                        f"SELECT count(*) FROM {table} WHERE SCHEMA_NAME = ? AND PIPE_NAME = ?",
                        key[:2],
                    )[0]
                    _check_limit(n, max_channels, pipe)
                execute(
                    cur,
                    f"INSERT INTO {table} (SCHEMA_NAME, PIPE_NAME, CHANNEL_NAME, CLIENT_SEQ, "
                    "ROW_SEQ, COMMITTED_OFFSET_TOKEN, CREATED_ON_MS) VALUES (?, ?, ?, 1, 0, ?, ?)",
                    [*key, offset, now_ms()],
                )
            else:
                # Re-open: new client sequencer, row sequencer restarts with it (§2.11).
                execute(
                    cur,
                    f"UPDATE {table} SET CLIENT_SEQ = CLIENT_SEQ + 1, ROW_SEQ = 0, "
                    "COMMITTED_OFFSET_TOKEN = CASE WHEN ? IS NULL THEN COMMITTED_OFFSET_TOKEN "
                    "ELSE ? END WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
                    [offset, offset, *key],
                )
            state = _read_channels(cur, db, schema, pipe, [channel])[channel]
            execute(cur, "COMMIT")
        except BaseException:
            execute(cur, "ROLLBACK")
            raise
        return state

    def drop_channel_sync(self, cur: Cursor, db: str, schema: str, pipe: str, channel: str) -> None:
        """Remove the channel and its offset token (§2.9)."""
        execute(
            cur,
            f"DELETE FROM {channels_table(db)} "
            "WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME = ?",
            [schema, pipe, channel],
        )

    @staticmethod
    def read_channels_sync(
        cur: Cursor, db: str, schema: str, pipe: str, channels: Sequence[str]
    ) -> dict[str, ChannelRow]:
        """The persisted state of the named channels that exist."""
        return _read_channels(cur, db, schema, pipe, channels)

    def table_spec_sync(self, cur: Cursor, db: str, schema: str, table: str) -> TableSpec | None:
        """A table's columns from DuckDB's catalog (tables created after start-up)."""
        rows = execute(
            cur,
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_catalog = ? AND table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [db, schema, table],
        )
        if not rows:
            return None
        return spec_from_duckdb(db, schema, table, rows)


def _read_channels(
    cur: Cursor, db: str, schema: str, pipe: str, channels: Sequence[str]
) -> dict[str, ChannelRow]:
    if not channels:
        return {}
    marks = ", ".join("?" for _ in channels)
    rows = execute(
        cur,
        f"SELECT {_STATUS_COLUMNS} FROM {channels_table(db)} "
        f"WHERE SCHEMA_NAME = ? AND PIPE_NAME = ? AND CHANNEL_NAME IN ({marks})",
        [schema, pipe, *channels],
    )
    return {r[0]: ChannelRow(*r) for r in rows}


def _check_limit(existing: int, limit: int, pipe: str) -> None:
    if existing >= limit:
        raise ChannelLimitError(f"pipe {pipe} already has {existing} channels (limit {limit})")


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
