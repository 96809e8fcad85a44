"""A stream's change rows: snapshot diff, materialising per transaction, moving the offset.

The offset of a stream is a snapshot of its base table keyed by DuckDB's `rowid` (all columns for
a standard stream, only row ids for an append-only one), in the hidden schema of the table's
database; see `streams.py` for the objects and `forget_deleted` for row-id reuse.
"""

# ruff: noqa: S608 - identifiers go through quote()/table(); values are bound parameters.
from __future__ import annotations

import uuid
from dataclasses import dataclass

import duckdb
from sqlglot import exp

from streamd.standin.sql.engine import Session, SqlFailure, does_not_exist
from streamd.standin.storage.catalog import columns_of, hidden, now, records, table
from streamd.standin.storage.duck import HIDDEN_SCHEMA, execute, quote

_ID_SPAN = 1 << 40
"""Row ids stay below this; a retired id is -(id + 1) - generation * _ID_SPAN."""
META_COLUMNS = ("METADATA$ACTION", "METADATA$ISUPDATE", "METADATA$ROW_ID")


def forget_deleted(session: Session, expr: exp.Expr, consume: bool) -> exp.Expr:
    """After DML that can remove rows, set the deleted row ids in snapshots apart.

    DuckDB reuses the ids of an emptied table once it is checkpointed, so a deleted row must not
    keep its id in a snapshot, or a later row stored under it would pass for an update of it (or,
    in an append-only stream, for an old row). Append-only snapshots simply forget deleted ids
    (such a stream never reports deletes); standard ones move them to unique negative ids that
    still encode the original (`_row_id`), so the delete is reported with its row id.
    """
    if isinstance(expr, exp.TruncateTable):
        targets = list(expr.expressions)
    elif isinstance(expr, exp.Delete | exp.Merge) or (
        isinstance(expr, exp.Create) and expr.args.get("replace")
    ):
        targets = [expr.this]
    else:
        return expr
    for target in targets:
        if not isinstance(target, exp.Table):
            continue
        try:
            db, schema, name = session.qualify(target)
            watchers = records(
                session.cur,
                f"SELECT SCHEMA_NAME, NAME, MODE FROM {hidden(db, 'STREAMS')} "
                "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                [schema, name],
            )
        except (SqlFailure, duckdb.Error):
            continue  # not a table of a stand-in database: no streams on it
        if not watchers:
            continue
        source = table(db, schema, name)
        live = f"(SELECT rowid FROM {source})"
        epoch = table_epoch(session, db, schema, name)
        for w in watchers:
            snap = snapshot(db, str(w["SCHEMA_NAME"]), str(w["NAME"]))
            if w["MODE"] == "APPEND_ONLY":
                execute(session.cur, f"DELETE FROM {snap} WHERE _RID NOT IN {live}")
                continue
            execute(session.cur, f"UPDATE {snap} SET _RID = -(_RID + 1) - {epoch + 1} * "
                                 f"{_ID_SPAN} WHERE _RID >= 0 AND _RID NOT IN {live}")  # fmt: skip
        if not execute(session.cur, f"SELECT 1 FROM {source} LIMIT 1"):
            # Emptied: ids may be handed out again, so rows from now on get new row ids.
            execute(
                session.cur,
                f"INSERT OR REPLACE INTO {hidden(db, 'TABLE_EPOCHS')} VALUES (?, ?, ?)",
                [schema, name, epoch + 1],
            )
    return expr


def table_epoch(session: Session, db: str, schema: str, name: str) -> int:
    """How many times the table was emptied while streams watched it (part of row ids)."""
    rows = execute(
        session.cur,
        f"SELECT EPOCH FROM {hidden(db, 'TABLE_EPOCHS')} WHERE SCHEMA_NAME = ? AND TABLE_NAME = ?",
        [schema, name],
    )
    return int(rows[0][0]) if rows else 0


def _row_id(source: str, rid: str, epoch: int) -> str:
    """METADATA$ROW_ID of a snapshot or table row id: unique across emptyings of the table.

    A retired snapshot id (negative, see `forget_deleted`) carries the epoch it lived in.
    """
    retired = f"{rid} < 0"
    era = f"(CASE WHEN {retired} THEN (-{rid} - 1) // {_ID_SPAN} - 1 ELSE {epoch} END)"
    original = f"(CASE WHEN {retired} THEN (-{rid} - 1) % {_ID_SPAN} ELSE {rid} END)"
    return f"md5('{source.replace(chr(39), chr(39) * 2)}:' || {era} || ':' || {original})"


@dataclass
class _Read:
    """A stream's change set materialised for one transaction."""

    sql: str
    consumed: bool = False


def changes_sql(session: Session, db: str, stream: dict[str, object], consume: bool) -> str:
    """DuckDB SQL of a stream's change rows; with `consume`, the offset moves at COMMIT.

    Inside a transaction (or when consuming) the rows are materialised once, so every read of
    the stream in it sees the same change set (§5.3).
    """
    key = f"stream:{db}.{stream['SCHEMA_NAME']}.{stream['NAME']}"
    cached = session.txn_cache.get(key)
    if isinstance(cached, _Read):
        cached.consumed |= consume
        return cached.sql
    source = table(db, str(stream["TABLE_SCHEMA"]), str(stream["TABLE_NAME"]))
    columns = columns_of(session.cur, db, str(stream["TABLE_SCHEMA"]), str(stream["TABLE_NAME"]))
    if not columns:
        raise does_not_exist("Table", source)
    snap = snapshot(db, str(stream["SCHEMA_NAME"]), str(stream["NAME"]))
    epoch = table_epoch(session, db, str(stream["TABLE_SCHEMA"]), str(stream["TABLE_NAME"]))
    diff = _diff_sql(source, snap, columns, stream["MODE"] == "APPEND_ONLY", epoch)
    if not consume and not session.explicit_txn:
        return _visible(diff, columns)
    # Materialise once per transaction: every read in it sees the same change set (§5.3), and the
    # snapshot moves by exactly these rows when the transaction commits, if DML read it.
    temp = quote(f"_stream_{uuid.uuid4().hex[:12]}")
    execute(session.cur, f"CREATE TEMP TABLE {temp} AS {diff}")
    read = _Read(_visible(f"SELECT * FROM {temp}", columns), consume)
    session.txn_cache[key] = read

    def at_commit() -> None:
        if read.consumed:
            _advance(session, db, stream, snap, temp, columns)
        execute(session.cur, f"DROP TABLE IF EXISTS {temp}")

    session.on_commit(at_commit)
    return read.sql


def _advance(
    session: Session, db: str, stream: dict[str, object], snap: str, temp: str, cols: list[str]
) -> None:
    cur = session.cur
    if stream["MODE"] == "APPEND_ONLY":
        execute(cur, f"INSERT INTO {snap} SELECT _RID FROM {temp}")
    else:
        picked = ", ".join(quote(c) for c in cols)
        execute(cur, f"DELETE FROM {snap} WHERE _RID IN "
                     f"(SELECT _RID FROM {temp} WHERE \"METADATA$ACTION\" = 'DELETE')")  # fmt: skip
        execute(cur, f"INSERT INTO {snap} SELECT _RID, {picked} FROM {temp} "
                     "WHERE \"METADATA$ACTION\" = 'INSERT'")  # fmt: skip
    execute(
        cur,
        f"UPDATE {hidden(db, 'STREAMS')} SET OFFSET_ON = ? WHERE SCHEMA_NAME = ? AND NAME = ?",
        [now(), stream["SCHEMA_NAME"], stream["NAME"]],
    )


def _diff_sql(source: str, snap: str, columns: list[str], append_only: bool, epoch: int) -> str:
    cols = [quote(c) for c in columns]
    cur = f"(SELECT rowid AS _RID, {', '.join(cols)} FROM {source})"
    inserted = (
        f"SELECT c._RID, {', '.join('c.' + c for c in cols)}, 'INSERT' AS \"METADATA$ACTION\", "
        f'{{upd}} AS "METADATA$ISUPDATE", {_row_id(source, "c._RID", epoch)} AS "METADATA$ROW_ID" '
        f"FROM {cur} c LEFT JOIN {snap} s ON s._RID = c._RID"
    )
    if append_only:
        return inserted.format(upd="false") + " WHERE s._RID IS NULL"
    old, new = ", ".join("s." + c for c in cols), ", ".join("c." + c for c in cols)
    changed = f"({old}) IS DISTINCT FROM ({new})"
    deleted = (
        f"SELECT s._RID, {', '.join('s.' + c for c in cols)}, 'DELETE', c._RID IS NOT NULL, "
        f"{_row_id(source, 's._RID', epoch)} FROM {snap} s "
        f"LEFT JOIN {cur} c ON s._RID = c._RID "
        f"WHERE c._RID IS NULL OR {changed}"
    )
    inserted = inserted.format(upd="s._RID IS NOT NULL") + f" WHERE s._RID IS NULL OR {changed}"
    return f"{inserted} UNION ALL {deleted}"


def _visible(source: str, columns: list[str]) -> str:
    picked = ", ".join(quote(c) for c in [*columns, *META_COLUMNS])
    return f"SELECT {picked} FROM ({source}) AS _changes"


def snapshot(db: str, schema: str, name: str) -> str:
    """The quoted name of a stream's snapshot table (its offset)."""
    return f"{quote(db)}.{quote(HIDDEN_SCHEMA)}.{quote(f'STREAM${schema}${name}')}"
