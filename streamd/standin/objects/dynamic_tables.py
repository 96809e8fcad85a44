"""Dynamic tables (§5.6): definitions, full refreshes with history, and which ones are due.

A refresh is `CREATE OR REPLACE TABLE d AS <query>` in one transaction with the catalog's new data
timestamp and its history row, so a failed refresh leaves the previous contents and says why.
Upstream dynamic tables with `TARGET_LAG = DOWNSTREAM` are refreshed first; if one fails, the
dependent records UPSTREAM_FAILED. Every refresh is FULL (REFRESH_MODE is kept and shown).
"""

# ruff: noqa: S608 - identifiers go through hidden()/table(); values are bound parameters.
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from streamd.standin.objects.named import (
    DYNAMIC_TABLE,
    NAME,
    OPTION,
    drop_object,
    find_object,
    unquote,
)
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    does_not_exist,
    split_top_level_as,
    strip_comments,
    unsupported,
)
from streamd.standin.storage.catalog import columns_of, hidden, now, records, table
from streamd.standin.storage.duck import Cursor, execute

_CREATE = re.compile(
    rf"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?:TRANSIENT\s+)?DYNAMIC\s+TABLE\s+"
    rf"(?P<ine>IF\s+NOT\s+EXISTS\s+)?(?P<name>{NAME})\s*(?P<cols>\([^)]*\))?(?P<rest>.*)$",
    re.I | re.S,
)
_ALTER = re.compile(
    rf"ALTER\s+DYNAMIC\s+TABLE\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{NAME})\s+(?P<action>\w+)"
    r"(?P<rest>.*)$",
    re.I | re.S,
)
_LAG = re.compile(r"^\s*(\d+)\s*(SECONDS?|MINUTES?|HOURS?|DAYS?)\s*$", re.I)
_LAG_UNIT_S = {"S": 1, "M": 60, "H": 3600, "D": 86400}
_KNOWN = {"TARGET_LAG", "WAREHOUSE", "REFRESH_MODE", "INITIALIZE", "COMMENT",
          "DATA_RETENTION_TIME_IN_DAYS", "MAX_DATA_EXTENSION_TIME_IN_DAYS"}  # fmt: skip


def register(engine: SqlEngine, poke: Callable[[], None]) -> None:
    """Install the DYNAMIC TABLE statements; `poke` wakes the refresh scheduler."""

    def changed(handler: Callable[[Session, Statement], Result]) -> Callable[..., Result]:
        def run(session: Session, stmt: Statement) -> Result:
            result = handler(session, stmt)
            session.after.append(poke)
            return result

        return run

    engine.register(r"CREATE\s+(OR\s+REPLACE\s+)?(TRANSIENT\s+)?DYNAMIC\s+TABLE\b", changed(create))
    engine.register(r"ALTER\s+DYNAMIC\s+TABLE\b", changed(alter))
    engine.register(r"DROP\s+DYNAMIC\s+TABLE\b", changed(drop))


def lag_seconds(text: str) -> float | None:
    """Seconds of a TARGET_LAG value; None for DOWNSTREAM."""
    if text.upper() == "DOWNSTREAM":
        return None
    m = _LAG.match(text)
    if m is None:
        raise compilation_error(f"invalid TARGET_LAG {text!r} (use 'N minutes' or DOWNSTREAM)")
    return float(int(m[1]) * _LAG_UNIT_S[m[2][0].upper()])


def create(session: Session, stmt: Statement) -> Result:
    """`CREATE [OR REPLACE] DYNAMIC TABLE d TARGET_LAG = … WAREHOUSE = w … AS SELECT …`."""
    m = _CREATE.match(strip_comments(stmt.text))
    split = split_top_level_as(m["rest"]) if m else None
    if m is None or split is None:
        raise compilation_error(f"cannot parse CREATE DYNAMIC TABLE: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    header, query = split
    options = {k.upper(): v for k, v in OPTION.findall(header)}
    unknown = set(options) - _KNOWN
    if unknown:
        raise unsupported(f"CREATE DYNAMIC TABLE option {sorted(unknown)[0]}")
    if "TARGET_LAG" not in options:
        raise compilation_error("CREATE DYNAMIC TABLE needs TARGET_LAG")
    lag_text = unquote(options["TARGET_LAG"])
    lag = lag_seconds(lag_text)
    if m["cols"]:
        names = [c.strip().split()[0] for c in m["cols"].strip("()").split(",") if c.strip()]
        query = f"SELECT * FROM ({query}) AS _dt({', '.join(names)})"
    _parse(query)
    mode = (options.get("REFRESH_MODE") or "AUTO").upper()
    with session.transaction():
        found = _lookup(session.cur, db, schema, name)
        if found is not None or columns_of(session.cur, db, schema, name):
            if m["ine"]:
                return Result.status(f"{name} already exists, statement succeeded.")
            if not m["replace"]:
                raise SqlFailure(
                    "002002", "42710", f"SQL compilation error:\nObject '{name}' already exists."
                )
        execute(
            session.cur,
            f"DELETE FROM {hidden(db, 'DYNAMIC_TABLES')} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [schema, name],
        )
        execute(
            session.cur,
            f"INSERT INTO {hidden(db, 'DYNAMIC_TABLES')} (SCHEMA_NAME, NAME, CREATED_ON, "
            "TARGET_LAG, TARGET_LAG_SEC, WAREHOUSE, REFRESH_MODE, QUERY, STATE, COMMENT) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'RUNNING', ?)",
            [schema, name, now(), "DOWNSTREAM" if lag is None else lag_text, lag,
             options.get("WAREHOUSE"), mode, query, unquote(options.get("COMMENT")) or None],
        )  # fmt: skip
    if (unquote(options.get("INITIALIZE")) or "ON_CREATE").upper() == "ON_CREATE":
        dt = _lookup(session.cur, db, schema, name)
        assert dt is not None
        state = refresh(session.engine, session.cur, db, dt, "CREATION")
        if state != "SUCCEEDED":
            last = _last_error(session.cur, db, schema, name)
            raise SqlFailure(
                last[0] or "100000",
                "22000",
                f"Dynamic table {name} failed its initial refresh: {last[1]}",
            )
    return Result.status(f"Dynamic table {name} successfully created.")


def alter(session: Session, stmt: Statement) -> Result:
    """`ALTER DYNAMIC TABLE d REFRESH | SUSPEND | RESUME | SET TARGET_LAG = …`."""
    m = _ALTER.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse ALTER DYNAMIC TABLE: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    dt = _lookup(session.cur, db, schema, name)
    if dt is None:
        if m["ie"]:
            return Result.status("Statement executed successfully.")
        raise does_not_exist("Dynamic table", f"{db}.{schema}.{name}")
    action, rest = m["action"].upper(), m["rest"].strip()
    if action == "REFRESH" and not rest:
        state = refresh(session.engine, session.cur, db, dt, "MANUAL")
        if state != "SUCCEEDED":
            code, message = _last_error(session.cur, db, schema, name)
            raise SqlFailure(
                code or "100000", "22000", f"Dynamic table {name} refresh failed: {message}"
            )
        return Result([("status", "VARCHAR")], [(f"{name} refreshed.",)])
    if action == "SUSPEND" and not rest:
        _set(session.cur, db, schema, name, "STATE = 'SUSPENDED', SUSPENDED_ON = ?", [now()])
    elif action == "RESUME" and not rest:
        _set(session.cur, db, schema, name, "STATE = 'RUNNING', RESUMED_ON = ?", [now()])
    elif action == "SET" and (
        lag := re.match(r"TARGET_LAG\s*=\s*('[^']*'|DOWNSTREAM)\s*$", rest, re.I)
    ):
        text = unquote(lag[1])
        seconds = lag_seconds(text)
        shown = "DOWNSTREAM" if seconds is None else text
        _set(session.cur, db, schema, name, "TARGET_LAG = ?, TARGET_LAG_SEC = ?", [shown, seconds])
    else:
        raise unsupported(f"ALTER DYNAMIC TABLE … {action} {rest}")
    return Result.status("Statement executed successfully.")


def drop(session: Session, stmt: Statement) -> Result:
    """`DROP DYNAMIC TABLE [IF EXISTS] d`: its definition and its contents."""
    return drop_object(session, stmt, DYNAMIC_TABLE, _drop_contents)


def _drop_contents(session: Session, db: str, schema: str, name: str) -> None:
    execute(session.cur, f"DROP TABLE IF EXISTS {table(db, schema, name)}")


def refresh(engine: SqlEngine, cur: Cursor, db: str, dt: dict[str, object], trigger: str) -> str:
    """Refresh `dt` (DOWNSTREAM upstreams first); returns SUCCEEDED, FAILED or UPSTREAM_FAILED.

    A scheduled refresh re-reads the table first: it may have been suspended or dropped since
    the scheduler planned on a read cursor (then nothing runs: "NOT_RUN").
    """
    schema, name = str(dt["SCHEMA_NAME"]), str(dt["NAME"])
    if trigger == "SCHEDULED":
        fresh = _lookup(cur, db, schema, name)
        if fresh is None or fresh["STATE"] != "RUNNING":
            return "NOT_RUN"
        dt = fresh
    session = Session(engine, cur, db, schema)
    start = now()
    for upstream in _upstreams(session, db, dt):
        if (
            upstream["TARGET_LAG_SEC"] is None
            # A suspended upstream (NOT_RUN) is read as it is, like a base table.
            and refresh(engine, cur, db, upstream, trigger) not in ("SUCCEEDED", "NOT_RUN")
        ):
            why = f"upstream {upstream['NAME']} failed to refresh"
            _history(cur, db, dt, "UPSTREAM_FAILED", "UPSTREAM_FAILED", why, start, trigger, None)
            return "UPSTREAM_FAILED"
    target = table(db, schema, name)
    try:
        with session.transaction():
            session.execute(f'USE "{db}"."{schema}"')
            sql = session.to_duckdb(_parse(str(dt["QUERY"])), consume=False)
            before = _count(session, db, schema, name)
            session.execute(f"CREATE OR REPLACE TABLE {target} AS {sql}")
            after = _count(session, db, schema, name)
            _set(cur, db, schema, name, "DATA_TIMESTAMP = ?", [start])
            _history(cur, db, dt, "SUCCEEDED", None, None, start, trigger, (after, before))
    except SqlFailure as err:
        _history(cur, db, dt, "FAILED", err.code, err.message, start, trigger, None)
        return "FAILED"
    return "SUCCEEDED"


def due(
    cur: Cursor, db: str, scale: float, moment: datetime
) -> tuple[list[dict[str, object]], datetime | None]:
    """RUNNING dynamic tables with a lag that are due at `moment`, and the next due time.

    A table is refreshed once half its (scaled) target lag has passed since its data timestamp,
    so its lag stays under the target.
    """
    ready: list[dict[str, object]] = []
    soonest: datetime | None = None
    for dt in records(
        cur,
        f"SELECT * FROM {hidden(db, 'DYNAMIC_TABLES')} "
        "WHERE STATE = 'RUNNING' AND TARGET_LAG_SEC IS NOT NULL",
    ):
        stamp = dt["DATA_TIMESTAMP"] or dt["CREATED_ON"]
        assert isinstance(stamp, datetime)
        at = stamp + timedelta(seconds=float(str(dt["TARGET_LAG_SEC"])) * scale / 2)
        if at <= moment:
            ready.append(dt)
        elif soonest is None or at < soonest:
            soonest = at
    return ready, soonest


def _upstreams(session: Session, db: str, dt: dict[str, object]) -> list[dict[str, object]]:
    found = []
    for ref in _parse(str(dt["QUERY"])).find_all(exp.Table):
        try:
            rdb, rschema, rname = session.qualify(ref)
        except SqlFailure:
            continue
        if rdb == db and (up := _lookup(session.cur, db, rschema, rname)) is not None:
            found.append(up)
    return found


def _set(
    cur: Cursor, db: str, schema: str, name: str, assignments: str, params: list[object]
) -> None:
    execute(
        cur,
        f"UPDATE {hidden(db, 'DYNAMIC_TABLES')} SET {assignments} "
        "WHERE SCHEMA_NAME = ? AND NAME = ?",
        [*params, schema, name],
    )


def _history(
    cur: Cursor,
    db: str,
    dt: dict[str, object],
    state: str,
    code: str | None,
    message: str | None,
    start: datetime,
    trigger: str,
    counts: tuple[int, int] | None,
) -> None:
    lag = dt["TARGET_LAG_SEC"]
    previous = dt["DATA_TIMESTAMP"]
    target = (
        previous + timedelta(seconds=float(str(lag)))
        if isinstance(previous, datetime) and lag is not None
        else None
    )
    execute(
        cur,
        f"INSERT INTO {hidden(db, 'DT_REFRESH_HISTORY')} VALUES "
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [dt["NAME"], dt["SCHEMA_NAME"], state, code, message, str(uuid.uuid4()),
         start, start, now(), target, "FULL" if state == "SUCCEEDED" else None, trigger, lag,
         counts[0] if counts else None, counts[1] if counts else None],
    )  # fmt: skip


def _last_error(cur: Cursor, db: str, schema: str, name: str) -> tuple[str | None, str | None]:
    rows = execute(
        cur,
        f"SELECT STATE_CODE, STATE_MESSAGE FROM {hidden(db, 'DT_REFRESH_HISTORY')} "
        "WHERE SCHEMA_NAME = ? AND NAME = ? ORDER BY REFRESH_END_TIME DESC LIMIT 1",
        [schema, name],
    )
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def _count(session: Session, db: str, schema: str, name: str) -> int:
    # Checked first: a failing query would abort the refresh's transaction.
    if not columns_of(session.cur, db, schema, name):
        return 0
    _, rows = session.execute(f"SELECT count(*) FROM {table(db, schema, name)}")
    return int(str(rows[0][0]))


def _parse(query: str) -> exp.Expr:
    try:
        return sqlglot.parse_one(query, read="snowflake")
    except SqlglotError as err:
        raise compilation_error(f"cannot parse the dynamic table's query: {err}") from err


def _lookup(cur: Cursor, db: str, schema: str, name: str) -> dict[str, object] | None:
    return find_object(cur, db, DYNAMIC_TABLE, schema, name)
