"""SQL for classic pipes: CREATE [OR REPLACE] PIPE, DROP PIPE, SYSTEM$PIPE_STATUS, and the
INFORMATION_SCHEMA.COPY_HISTORY table function (handlers of `sql/engine.py`)."""

from __future__ import annotations

import re

import orjson

from streamd.standin.snowpipe.history import copy_history_sql
from streamd.standin.snowpipe.loader import Snowpipe
from streamd.standin.snowpipe.pipes import parse_create_pipe, qualify
from streamd.standin.sql.engine import Result, Session, SqlEngine, SqlFailure, Statement

_DROP = re.compile(
    r"^\s*DROP\s+PIPE\s+(?P<exists>IF\s+EXISTS\s+)?(?P<name>\S+?)\s*;?\s*$", re.IGNORECASE
)
_STATUS = re.compile(
    r"^\s*SELECT\s+SYSTEM\$PIPE_STATUS\s*\(\s*'(?P<name>(?:[^']|'')+)'\s*\)\s*;?\s*$",
    re.IGNORECASE,
)


def copy_history(session: Session, db: str, args: dict[str, str]) -> str:
    """DuckDB SQL for INFORMATION_SCHEMA.COPY_HISTORY (the table function `show.py` rewrites)."""
    return copy_history_sql(session.cur, db, args)


def register(engine: SqlEngine, pipes: Snowpipe) -> None:
    """Claim the pipe statements for `pipes`."""

    def create(session: Session, stmt: Statement) -> Result:
        parsed = parse_create_pipe(stmt.text, session.database, session.schema)
        assert parsed is not None  # the registration regex matched
        with session.transaction():
            return Result.status(pipes.create_sync(session.cur, parsed))

    def drop(session: Session, stmt: Statement) -> Result:
        found = _DROP.match(stmt.text)
        if found is None:
            raise SqlFailure("001003", "42000", "SQL compilation error: DROP PIPE [IF EXISTS] name")
        db, schema, name = qualify(found["name"], session.database, session.schema, "pipe")
        with session.transaction():
            dropped = pipes.drop_sync(session.cur, db, schema, name)
        if not dropped and not found["exists"]:
            raise SqlFailure(
                "002003",
                "02000",
                f"SQL compilation error:\nPipe '{db}.{schema}.{name}' does not exist or not "
                "authorized.",
            )
        return Result.status(f"{name} successfully dropped.")

    def status(session: Session, stmt: Statement) -> Result:
        found = _STATUS.match(stmt.text)
        if found is None:
            raise SqlFailure(
                "001003", "42000", "SQL compilation error: SELECT SYSTEM$PIPE_STATUS('<pipe>')"
            )
        raw = found["name"].replace("''", "'")
        db, schema, name = qualify(raw, session.database, session.schema, "pipe")
        spec = pipes.spec_sync(session.cur, db, schema, name)
        if spec is None:
            raise SqlFailure(
                "002003",
                "02000",
                f"SQL compilation error:\nPipe '{db}.{schema}.{name}' does not exist or not "
                "authorized.",
            )
        text = orjson.dumps(pipes.pipe_status_sync(session.cur, spec)).decode()
        return Result([(f"SYSTEM$PIPE_STATUS('{raw}')", "VARCHAR")], [(text,)])

    engine.register(r"CREATE\s+(OR\s+REPLACE\s+)?PIPE\b", create)
    engine.register(r"DROP\s+PIPE\b", drop)
    engine.register(r"SELECT\s+SYSTEM\$PIPE_STATUS\s*\(", status)
    engine.register_table_function("COPY_HISTORY", copy_history)
