"""Committing appended batches: rows into their table, bad rows into the error table, and the
channel's offset and counters advanced, all in the transaction of the rows they describe.

The commit is the only place where `last_committed_offset_token` moves, so what status reports is
always what the database holds (local-target-notes §1.3).
"""

# ruff: noqa: S608 - identifiers in f-strings go through quote(); every value is a bound parameter.
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from streamd.standin.storage.ddl import TableSpec
from streamd.standin.storage.duck import (
    HIDDEN_SCHEMA,
    Cursor,
    channels_table,
    execute,
    now_ms,
    quote,
)
from streamd.standin.streaming.parse_rows import ParsedRows, RejectedRow


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


def commit_batches(cur: Cursor, db: str, commits: Sequence[Commit]) -> None:
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


def _in_transaction(
    cur: Cursor, db: str, commits: Sequence[Commit], reject_all: str | None
) -> None:
    execute(cur, "BEGIN")
    try:
        for commit in commits:
            _apply(cur, db, commit, reject_all)
        execute(cur, "COMMIT")
    except BaseException:
        execute(cur, "ROLLBACK")
        raise


def _apply(cur: Cursor, db: str, commit: Commit, reject_all: str | None) -> None:
    spec = commit.table
    current = execute(
        cur,
        f"SELECT CLIENT_SEQ FROM {channels_table(db)} "
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
            execute(
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
    execute(
        cur,
        f"UPDATE {channels_table(db)} SET {', '.join(sets)} "
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
        execute(
            cur,
            f"INSERT INTO {quote(db)}.{quote(HIDDEN_SCHEMA)}.ERROR_TABLE "
            "SELECT ts, NULL, schema, tbl, code, CAST(meta AS JSON), CAST(data AS JSON) "
            "FROM _standin_errors",
        )
    finally:
        cur.unregister("_standin_errors")
