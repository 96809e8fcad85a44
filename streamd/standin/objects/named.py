"""What streams, tasks and dynamic tables share: the name pattern, option values, lookup and DROP.

Each of these objects is a row in its database's hidden catalog (`storage/catalog.py`), keyed by
schema and name; dropping one deletes that row and whatever the object keeps beside it.
"""

# ruff: noqa: S608 - identifiers go through hidden(); values are bound parameters.
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import duckdb

from streamd.standin.sql.engine import (
    Result,
    Session,
    Statement,
    compilation_error,
    does_not_exist,
    strip_comments,
)
from streamd.standin.storage.catalog import hidden, records
from streamd.standin.storage.duck import Cursor, execute

NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"[^"]+"|[A-Za-z_][\w$]*)){0,2}'
"""An object name: one to three parts, each a plain or double-quoted identifier."""
OPTION = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|[\w.\"$]+)", re.S)
"""A `KEY = value` option of CREATE/ALTER: a quoted string or a bare word."""


@dataclass(frozen=True, slots=True)
class ObjectKind:
    """A kind of catalog object, as DDL names it and as its catalog table holds it."""

    keyword: str
    """The words after DROP: "TASK", "DYNAMIC TABLE"."""
    label: str
    """How errors name one: "Task", "Dynamic table"."""
    catalog: str
    """Its table in the hidden schema: "TASKS"."""
    noun: str
    """What `DROP … IF EXISTS` says was not found: "task", "table"."""
    missing_db_ok: bool = False
    """Treat a database without a catalog as "not found" instead of failing."""


STREAM = ObjectKind("STREAM", "Stream", "STREAMS", "stream", missing_db_ok=True)
TASK = ObjectKind("TASK", "Task", "TASKS", "task")
DYNAMIC_TABLE = ObjectKind("DYNAMIC TABLE", "Dynamic table", "DYNAMIC_TABLES", "table")


def find_object(
    cur: Cursor, db: str, kind: ObjectKind, schema: str, name: str
) -> dict[str, object] | None:
    """The object's catalog row, or None."""
    try:
        found = records(
            cur,
            f"SELECT * FROM {hidden(db, kind.catalog)} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [schema, name],
        )
    except duckdb.Error:
        if not kind.missing_db_ok:
            raise
        return None
    return found[0] if found else None


def delete_object(cur: Cursor, db: str, kind: ObjectKind, schema: str, name: str) -> None:
    """Delete the object's catalog row (no-op when there is none)."""
    execute(
        cur,
        f"DELETE FROM {hidden(db, kind.catalog)} WHERE SCHEMA_NAME = ? AND NAME = ?",
        [schema, name],
    )


def drop_object(
    session: Session,
    stmt: Statement,
    kind: ObjectKind,
    cleanup: Callable[[Session, str, str, str], None] | None = None,
) -> Result:
    """`DROP <kind> [IF EXISTS] name`: delete the catalog row, then `cleanup(session, db, schema,
    name)` in the same transaction."""
    words = r"\s+".join(kind.keyword.split())
    pattern = rf"DROP\s+{words}\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{NAME})\s*$"
    m = re.match(pattern, strip_comments(stmt.text), re.I | re.S)
    if m is None:
        raise compilation_error(f"cannot parse DROP {kind.keyword}: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    with session.transaction():
        if find_object(session.cur, db, kind, schema, name) is None:
            if m["ie"]:
                return Result.status(
                    f"Drop statement executed successfully ({kind.noun} not found)."
                )
            raise does_not_exist(kind.label, f"{db}.{schema}.{name}")
        delete_object(session.cur, db, kind, schema, name)
        if cleanup is not None:
            cleanup(session, db, schema, name)
    return Result.status(f"{name} successfully dropped.")


@overload
def unquote(value: str) -> str: ...
@overload
def unquote(value: str | None) -> str | None: ...
def unquote(value: str | None) -> str | None:
    """A single-quoted option value without its quotes (`''` → `'`); others as given."""
    if value is None or not value.startswith("'"):
        return value
    return value[1:-1].replace("''", "'")
