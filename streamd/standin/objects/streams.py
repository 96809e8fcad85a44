"""Streams (§5.1–5.3): change rows between a stream's offset and now; committed DML consumes them.

A stream's offset is a snapshot of its base table, keyed by DuckDB's `rowid`, in the hidden schema
of the table's database: all of the table's columns for a standard stream (so deletes keep their
pre-image and updates pair up by row id), only the row ids for an append-only one. Reading the
stream diffs the table against the snapshot; it sees every write, whether from Snowpipe Streaming
commits or SQL, without hooks in the write paths (`stream_changes.py`). Cost is O(table) per
read, which suits the demo- and test-sized tables the stand-in serves. Consuming DML
materialises the change rows once per transaction and moves the snapshot forward in that
transaction's commit; a rollback leaves it.

DuckDB reuses row ids once a table has been emptied (DELETE of every row, TRUNCATE) and
checkpointed, so every deleting statement sets deleted ids apart in the snapshots, in its own
transaction (`forget_deleted`).
"""

# ruff: noqa: S608 - identifiers go through quote()/table(); values are bound parameters.
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlglot import exp

from streamd.standin.objects.named import (
    NAME,
    STREAM,
    delete_object,
    drop_object,
    find_object,
    unquote,
)
from streamd.standin.objects.stream_changes import changes_sql, forget_deleted, snapshot
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    does_not_exist,
    strip_comments,
    unsupported,
)
from streamd.standin.storage.catalog import columns_of, hidden, now, table
from streamd.standin.storage.duck import execute

_CREATE = re.compile(
    rf"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?STREAM\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{NAME})\s+(?:COPY\s+GRANTS\s+)?ON\s+(?P<kind>TABLE|VIEW|EXTERNAL\s+TABLE|STAGE|"
    rf"DYNAMIC\s+TABLE)\s+(?P<table>{NAME})(?P<rest>.*)$",
    re.I | re.S,
)
_OPTION = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|\w+)", re.S)
_RETENTION = re.compile(
    r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<name>" + NAME + r")\s+SET\s+(?P<rest>.*)$", re.I | re.S
)
_RETENTION_KEYS = ("DATA_RETENTION_TIME_IN_DAYS", "MAX_DATA_EXTENSION_TIME_IN_DAYS")
DEFAULT_RETENTION_DAYS = 1.0
DEFAULT_MAX_EXTENSION_DAYS = 14.0
"""Snowflake's defaults: staleness comes after max(retention, extension) = 14 days (§5.1, §5.3)."""


def register(engine: SqlEngine) -> None:
    """Install CREATE/DROP STREAM, retention settings and the stream-reading rewriter."""
    engine.register(r"CREATE\s+(OR\s+REPLACE\s+)?STREAM\b", create_stream)
    engine.register(r"DROP\s+STREAM\b", drop_stream)
    engine.register(_is_retention_alter, set_retention)
    engine.register_rewriter(rewrite)
    engine.after_write.append(forget_deleted)


# ---- DDL -----------------------------------------------------------------------------------


def create_stream(session: Session, stmt: Statement) -> Result:
    """`CREATE [OR REPLACE] STREAM [IF NOT EXISTS] s ON TABLE t [APPEND_ONLY = TRUE] …`."""
    m = _CREATE.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse CREATE STREAM: {stmt.text[:200]}")
    if " ".join(m["kind"].upper().split()) != "TABLE":
        raise unsupported(f"streams on {m['kind'].upper()} (only ON TABLE)")
    db, schema, name = session.qualify(m["name"])
    tdb, tschema, tname = session.qualify(m["table"])
    options = {k.upper(): v for k, v in _OPTION.findall(m["rest"])}
    if re.search(r"\b(AT|BEFORE)\s*\(", m["rest"], re.I):
        raise unsupported("CREATE STREAM … AT/BEFORE (time travel)")
    if tdb != db:
        raise unsupported("a stream in another database than its table")
    columns = columns_of(session.cur, tdb, tschema, tname)
    if not columns:
        raise does_not_exist("Table", f"{tdb}.{tschema}.{tname}")
    append_only = options.get("APPEND_ONLY", "FALSE").upper() == "TRUE"
    initial = options.get("SHOW_INITIAL_ROWS", "FALSE").upper() == "TRUE"
    comment = options.get("COMMENT")
    with session.transaction():
        existing = _lookup(session, db, schema, name)
        if existing is not None:
            if m["ine"]:
                return Result.status(f"{name} already exists, statement succeeded.")
            if not m["replace"]:
                raise SqlFailure(
                    "002002", "42710", f"SQL compilation error:\nObject '{name}' already exists."
                )
            delete_object(session.cur, db, STREAM, schema, name)
            _drop_snapshot(session, db, schema, name)
        source = table(tdb, tschema, tname)
        picked = "rowid AS _RID" if append_only else "rowid AS _RID, *"
        where = " WHERE false" if initial else ""
        session.execute(f"CREATE TABLE {snapshot(db, schema, name)} AS "
                        f"SELECT {picked} FROM {source}{where}")  # fmt: skip
        session.execute(
            f"INSERT INTO {hidden(db, 'STREAMS')} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [schema, name, tschema, tname, "APPEND_ONLY" if append_only else "DEFAULT",
             now(), now(), unquote(comment)],
        )  # fmt: skip
    return Result.status(f"Stream {name} successfully created.")


def drop_stream(session: Session, stmt: Statement) -> Result:
    """`DROP STREAM [IF EXISTS] s`: its catalog row and its offset snapshot."""
    return drop_object(session, stmt, STREAM, _drop_snapshot)


def _drop_snapshot(session: Session, db: str, schema: str, name: str) -> None:
    session.execute(f"DROP TABLE IF EXISTS {snapshot(db, schema, name)}")


def _is_retention_alter(stmt: Statement) -> bool:
    text = strip_comments(stmt.text).upper()
    keys = (*_RETENTION_KEYS, "CHANGE_TRACKING")
    return text.startswith("ALTER") and " SET " in text and any(k in text for k in keys)


def set_retention(session: Session, stmt: Statement) -> Result:
    """`ALTER TABLE t SET DATA_RETENTION_TIME_IN_DAYS = n [MAX_DATA_EXTENSION_TIME_IN_DAYS = m]`
    (and `CHANGE_TRACKING = TRUE|FALSE`, accepted as is).

    Fractional days are accepted (Snowflake takes integers) so tests can make streams go stale in
    seconds; nothing else in the SET list is accepted here.
    """
    m = _RETENTION.match(strip_comments(stmt.text))
    if m is None:
        raise unsupported(stmt.text)
    db, schema, name = session.qualify(m["name"])
    if not columns_of(session.cur, db, schema, name):
        raise does_not_exist("Table", f"{db}.{schema}.{name}")
    values: dict[str, float] = {}
    pair = r"(\w+)\s*=\s*('(?:[^']|'')*'|[\w.\-]+)"
    if re.sub(pair, "", m["rest"]).strip(" ,;\n\t"):
        raise unsupported(f"ALTER TABLE … SET {m['rest'].strip()}")
    for key, value in re.findall(pair, m["rest"]):
        if key.upper() == "CHANGE_TRACKING" and value.upper() in ("TRUE", "FALSE"):
            continue  # every table is tracked here (streams diff snapshots): nothing to switch
        if key.upper() not in _RETENTION_KEYS or not re.fullmatch(r"\d+(\.\d+)?", value):
            raise unsupported(f"ALTER TABLE … SET {key} = {value}")
        values[key.upper()] = float(value)
    current = _retention(session, db, schema, name)
    retention = values.get(_RETENTION_KEYS[0], current[0])
    extension = values.get(_RETENTION_KEYS[1], current[1])
    with session.transaction():
        session.execute(
            f"INSERT OR REPLACE INTO {hidden(db, 'TABLE_PARAMS')} VALUES (?, ?, ?, ?)",
            [schema, name, retention, extension],
        )
    return Result.status("Statement executed successfully.")


def _retention(session: Session, db: str, schema: str, name: str) -> tuple[float, float]:
    rows = execute(
        session.cur,
        f"SELECT RETENTION_DAYS, MAX_EXTENSION_DAYS FROM {hidden(db, 'TABLE_PARAMS')} "
        "WHERE SCHEMA_NAME = ? AND TABLE_NAME = ?",
        [schema, name],
    )
    if not rows:
        return DEFAULT_RETENTION_DAYS, DEFAULT_MAX_EXTENSION_DAYS
    return float(rows[0][0]), float(rows[0][1])


def stale_after(session: Session, db: str, stream: dict[str, object]) -> datetime:
    """Offset time + max(retention, max extension) of the base table (§5.1)."""
    retention, extension = _retention(
        session, db, str(stream["TABLE_SCHEMA"]), str(stream["TABLE_NAME"])
    )
    offset = stream["OFFSET_ON"]
    assert isinstance(offset, datetime)
    return offset + timedelta(days=max(retention, extension))


# ---- reading ---------------------------------------------------------------------------------


def rewrite(session: Session, expr: exp.Expr, consume: bool) -> exp.Expr:
    """Replace stream references by their change rows and `SYSTEM$STREAM_HAS_DATA` by its value."""
    for call in list(expr.find_all(exp.Anonymous)):
        if call.name.upper() == "SYSTEM$STREAM_HAS_DATA":
            args = call.expressions
            if len(args) != 1 or not isinstance(args[0], exp.Literal):
                raise compilation_error("SYSTEM$STREAM_HAS_DATA takes one string literal")
            call.replace(exp.Boolean(this=has_data(session, args[0].this)))
    for ref in list(expr.find_all(exp.Table)):
        if not isinstance(ref.this, exp.Identifier) or ref.name.startswith("__splice_"):
            continue
        try:
            db, schema, name = session.qualify(ref)
        except SqlFailure:
            continue
        stream = _lookup(session, db, schema, name)
        if stream is None:
            continue
        parent = ref.parent
        if isinstance(parent, exp.Insert | exp.Merge | exp.Update | exp.Delete) and (
            parent.this is ref
        ):
            raise compilation_error(f"Stream '{name}' cannot be the target of DML.")
        _check_fresh(session, db, stream)
        changes = changes_sql(session, db, stream, consume)
        ref.replace(session.splice(changes, ref.alias or name))
    return expr


def has_data(session: Session, name: str) -> bool:
    """`SYSTEM$STREAM_HAS_DATA`; an empty answer renews the offset time (keeps it fresh, §5.2)."""
    db, schema, sname = session.qualify(name)
    stream = _lookup(session, db, schema, sname)
    if stream is None:
        raise does_not_exist("Stream", f"{db}.{schema}.{sname}")
    _check_fresh(session, db, stream)
    changes = changes_sql(session, db, stream, consume=False)
    found = bool(execute(session.cur, f"SELECT EXISTS ({changes})")[0][0])
    if not found:
        execute(
            session.cur,
            f"UPDATE {hidden(db, 'STREAMS')} SET OFFSET_ON = ? WHERE SCHEMA_NAME = ? AND NAME = ?",
            [now(), stream["SCHEMA_NAME"], stream["NAME"]],
        )
    return found


def _check_fresh(session: Session, db: str, stream: dict[str, object]) -> None:
    """A stale stream cannot be read (§5.1)."""
    if now() > stale_after(session, db, stream):
        # Wording after Snowflake's; the code is not documented (tolerant choice).
        raise SqlFailure(
            "091901",
            "55000",
            f"Stream {db}.{stream['SCHEMA_NAME']}.{stream['NAME']} has become stale: its offset "
            "is older than the table's data retention. Recreate the stream.",
        )


def _lookup(session: Session, db: str, schema: str, name: str) -> dict[str, object] | None:
    """The stream's catalog row; None also where `db` has no catalog (then it is no stream)."""
    return find_object(session.cur, db, STREAM, schema, name)
