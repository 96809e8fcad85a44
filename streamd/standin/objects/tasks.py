"""Tasks (§5.5): CREATE/ALTER/EXECUTE/DROP TASK, and running a task graph on the writer thread.

A run evaluates the WHEN condition (false → SKIPPED), runs the body (one statement or a
`BEGIN … END` block, each statement autocommitted like Snowflake Scripting does), records the
outcome in the database's TASK_HISTORY, and on success runs the children whose predecessors all
succeeded in the same graph run. `taskloop.py` decides when roots are due.
"""

# ruff: noqa: S608 - identifiers go through hidden()/quote(); values are bound parameters.
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime

import sqlglot
from sqlglot.errors import SqlglotError

from streamd.standin.objects.cron import ScheduleError, parse_schedule
from streamd.standin.objects.streams import NAME, now
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    does_not_exist,
    parse_request,
    split_top_level_as,
    strip_comments,
    unsupported,
)
from streamd.standin.storage.catalog import hidden, records
from streamd.standin.storage.duck import Cursor, execute

_CREATE = re.compile(
    rf"CREATE\s+(?P<replace>OR\s+REPLACE\s+)?TASK\s+(?P<ine>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{NAME})(?P<rest>.*)$",
    re.I | re.S,
)
_ALTER = re.compile(
    rf"ALTER\s+TASK\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{NAME})\s+(?P<action>\w+)(?P<rest>.*)$",
    re.I | re.S,
)
_EXECUTE = re.compile(rf"EXECUTE\s+TASK\s+(?P<name>{NAME})\s*$", re.I | re.S)
_DROP = re.compile(rf"DROP\s+TASK\s+(?P<ie>IF\s+EXISTS\s+)?(?P<name>{NAME})\s*$", re.I | re.S)
_OPTION = re.compile(r"(\w+)\s*=\s*('(?:[^']|'')*'|[\w.\"$]+)", re.S)
_KNOWN_OPTIONS = {
    "WAREHOUSE", "USER_TASK_MANAGED_INITIAL_WAREHOUSE_SIZE", "SCHEDULE", "COMMENT",
    "ALLOW_OVERLAPPING_EXECUTION", "USER_TASK_TIMEOUT_MS", "SUSPEND_TASK_AFTER_NUM_FAILURES",
    "TASK_AUTO_RETRY_ATTEMPTS", "USER_TASK_MINIMUM_TRIGGER_INTERVAL_IN_SECONDS", "CONFIG",
    "TARGET_COMPLETION_INTERVAL", "SERVERLESS_TASK_MIN_STATEMENT_SIZE",
    "SERVERLESS_TASK_MAX_STATEMENT_SIZE",
}  # fmt: skip


def register(engine: SqlEngine, poke: Callable[[], None]) -> None:
    """Install the TASK statements; `poke` wakes the scheduler after a change (event loop)."""
    engine.register(
        r"CREATE\s+(OR\s+REPLACE\s+)?TASK\b", lambda s, t: _changed(s, create_task(s, t), poke)
    )
    engine.register(r"ALTER\s+TASK\b", lambda s, t: _changed(s, alter_task(s, t), poke))
    engine.register(r"DROP\s+TASK\b", lambda s, t: _changed(s, drop_task(s, t), poke))
    engine.register(r"EXECUTE\s+TASK\b", execute_task)


def _changed(session: Session, result: Result, poke: Callable[[], None]) -> Result:
    session.after.append(poke)
    return result


def create_task(session: Session, stmt: Statement) -> Result:
    """`CREATE [OR REPLACE] TASK t [options] [AFTER a, b] [WHEN cond] AS body`; starts suspended."""
    m = _CREATE.match(strip_comments(stmt.text))
    split = split_top_level_as(m["rest"]) if m else None
    if m is None or split is None:
        raise compilation_error(f"cannot parse CREATE TASK: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    header, body = split
    header, condition = _cut(header, "WHEN")
    header, after = _cut(header, "AFTER")
    options = {k.upper(): v for k, v in _OPTION.findall(header)}
    for key in options:
        if key not in _KNOWN_OPTIONS:
            raise unsupported(f"CREATE TASK option {key}")
    schedule = _unquote(options.get("SCHEDULE"))
    if schedule is not None:
        try:
            parse_schedule(schedule)
        except ScheduleError as err:
            raise compilation_error(str(err)) from err
    predecessors = [".".join(session.qualify(p.strip())) for p in after.split(",") if p.strip()]
    if schedule is None and not predecessors:
        # Triggered tasks (no schedule, no AFTER) need stream triggers the stand-in lacks.
        raise unsupported("a task without SCHEDULE or AFTER (triggered tasks)")
    if not body_statements(body):
        raise compilation_error("the task body is empty")
    with session.transaction():
        found = _lookup(session.cur, db, schema, name)
        if found is not None:
            if m["ine"]:
                return Result.status(f"{name} already exists, statement succeeded.")
            if not m["replace"]:
                raise SqlFailure(
                    "002002", "42710", f"SQL compilation error:\nObject '{name}' already exists."
                )
        execute(
            session.cur,
            f"DELETE FROM {hidden(db, 'TASKS')} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [schema, name],
        )
        execute(
            session.cur,
            f"INSERT INTO {hidden(db, 'TASKS')} (SCHEMA_NAME, NAME, ID, CREATED_ON, WAREHOUSE, "
            "SCHEDULE, PREDECESSORS, STATE, DEFINITION, CONDITION, COMMENT, ALLOW_OVERLAPPING, "
            "SUSPEND_AFTER_FAILURES) VALUES (?, ?, ?, ?, ?, ?, ?, 'suspended', ?, ?, ?, ?, ?)",
            [schema, name, str(uuid.uuid4()), now(), options.get("WAREHOUSE"), schedule,
             json.dumps(predecessors), body, condition or None, _unquote(options.get("COMMENT")),
             options.get("ALLOW_OVERLAPPING_EXECUTION", "FALSE").upper() == "TRUE",
             _failures_limit(options.get("SUSPEND_TASK_AFTER_NUM_FAILURES"))],
        )  # fmt: skip
    return Result.status(f"Task {name} successfully created.")


def alter_task(session: Session, stmt: Statement) -> Result:
    """`ALTER TASK t RESUME | SUSPEND | SET … | MODIFY AS … | MODIFY WHEN … | REMOVE WHEN |
    ADD AFTER … | REMOVE AFTER …`."""
    m = _ALTER.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse ALTER TASK: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    with session.transaction():
        task = _lookup(session.cur, db, schema, name)
        if task is None:
            if m["ie"]:
                return Result.status("Statement executed successfully.")
            raise does_not_exist("Task", f"{db}.{schema}.{name}")
        sets, params = _change(session, task, m["action"].upper(), m["rest"].strip())
        execute(
            session.cur,
            f"UPDATE {hidden(db, 'TASKS')} SET {sets} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [*params, schema, name],
        )
    return Result.status("Statement executed successfully.")


def _change(
    session: Session, task: dict[str, object], action: str, rest: str
) -> tuple[str, list[object]]:
    if action == "RESUME" and not rest:
        return "STATE = 'started'", []
    if action == "SUSPEND" and not rest:
        reason = "LAST_SUSPENDED_REASON = 'USER_SUSPENDED'"
        return f"STATE = 'suspended', LAST_SUSPENDED_ON = ?, {reason}", [now()]
    words = rest.split(None, 1)
    head, tail = (words[0].upper(), words[1] if len(words) > 1 else "") if words else ("", "")
    if action == "MODIFY" and head == "AS" and tail and body_statements(tail):
        return "DEFINITION = ?", [tail]
    if action == "MODIFY" and head == "WHEN" and tail:
        return "CONDITION = ?", [tail]
    if action == "REMOVE" and head == "WHEN" and not tail:
        return "CONDITION = NULL", []
    if head == "AFTER" and action in ("ADD", "REMOVE") and tail:
        names = {".".join(session.qualify(p.strip())) for p in tail.split(",") if p.strip()}
        current = json.loads(str(task["PREDECESSORS"]))
        if action == "ADD":
            preds = current + sorted(names - set(current))
        else:
            preds = [p for p in current if p not in names]
        if not preds and task["SCHEDULE"] is None:
            raise unsupported("a task without SCHEDULE or AFTER (triggered tasks)")
        return "PREDECESSORS = ?", [json.dumps(preds)]
    if action == "SET" and rest:
        options = {k.upper(): v for k, v in _OPTION.findall(rest)}
        if not options or set(options) - _KNOWN_OPTIONS:
            raise unsupported(f"ALTER TASK … SET {rest}")
        sets, params = [], []
        columns = {"SCHEDULE": "SCHEDULE", "WAREHOUSE": "WAREHOUSE", "COMMENT": "COMMENT",
                   "SUSPEND_TASK_AFTER_NUM_FAILURES": "SUSPEND_AFTER_FAILURES"}  # fmt: skip
        for key, raw in options.items():
            value: object = _unquote(raw)
            if key == "SCHEDULE":
                try:
                    parse_schedule(str(value))
                except ScheduleError as err:
                    raise compilation_error(str(err)) from err
            elif key == "SUSPEND_TASK_AFTER_NUM_FAILURES":
                value = _failures_limit(raw)
            if key in columns:  # the others change nothing the stand-in models
                sets.append(f"{columns[key]} = ?")
                params.append(value)
        return ", ".join(sets) or "STATE = STATE", params
    raise unsupported(f"ALTER TASK … {action} {rest}")


def drop_task(session: Session, stmt: Statement) -> Result:
    """`DROP TASK [IF EXISTS] t`."""
    m = _DROP.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse DROP TASK: {stmt.text[:200]}")
    db, schema, name = session.qualify(m["name"])
    with session.transaction():
        if _lookup(session.cur, db, schema, name) is None:
            if m["ie"]:
                return Result.status("Drop statement executed successfully (task not found).")
            raise does_not_exist("Task", f"{db}.{schema}.{name}")
        execute(
            session.cur,
            f"DELETE FROM {hidden(db, 'TASKS')} WHERE SCHEMA_NAME = ? AND NAME = ?",
            [schema, name],
        )
    return Result.status(f"{name} successfully dropped.")


def execute_task(session: Session, stmt: Statement) -> Result:
    """`EXECUTE TASK t`: runs the task (and its started children) now.

    Snowflake queues the run and returns at once; the stand-in runs it before answering, which
    only makes the outcome visible sooner (TASK_HISTORY shows SCHEDULED_FROM = EXECUTE_TASK).
    """
    m = _EXECUTE.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse EXECUTE TASK: {stmt.text[:200]}")
    if session.explicit_txn:
        raise compilation_error("EXECUTE TASK cannot run inside an open transaction")
    db, schema, name = session.qualify(m["name"])
    task = _lookup(session.cur, db, schema, name)
    if task is None:
        raise does_not_exist("Task", f"{db}.{schema}.{name}")
    run_graph(session.engine, session.cur, db, task, now(), "EXECUTE_TASK", None)
    return Result.status(f"Task {name} is scheduled to run immediately.")


# ---- running -----------------------------------------------------------------------------------


def run_graph(
    engine: SqlEngine,
    cur: Cursor,
    db: str,
    root: dict[str, object],
    scheduled: datetime,
    origin: str,
    next_time: datetime | None,
) -> str:
    """Run `root`, then children whose predecessors all succeeded; returns the root's state.

    A scheduled run re-reads the root first: the scheduler planned on a read cursor, and the task
    may have been suspended, altered or dropped since (then nothing runs: "NOT_RUN").
    """
    if origin == "SCHEDULE":
        fresh = _lookup(cur, db, str(root["SCHEMA_NAME"]), str(root["NAME"]))
        if fresh is None or fresh["STATE"] != "started" or fresh["ID"] != root["ID"]:
            return "NOT_RUN"
        root = fresh
    group = str(uuid.uuid4())
    done: dict[str, str] = {}
    queue = [root]
    while queue:
        task = queue.pop(0)
        key = f"{db}.{task['SCHEMA_NAME']}.{task['NAME']}"
        done[key] = run_one(engine, cur, db, task, scheduled, origin, str(root["ID"]), group,
                            next_time if task is root else None)  # fmt: skip
        if done[key] != "SUCCEEDED":
            continue
        for child in records(cur, f"SELECT * FROM {hidden(db, 'TASKS')} WHERE STATE = 'started'"):
            preds = json.loads(str(child["PREDECESSORS"]))
            child_key = f"{db}.{child['SCHEMA_NAME']}.{child['NAME']}"
            if (
                key in preds
                and child_key not in done
                and all(done.get(p) == "SUCCEEDED" for p in preds)
            ):
                queue.append(child)
    return done[f"{db}.{root['SCHEMA_NAME']}.{root['NAME']}"]


def run_one(
    engine: SqlEngine,
    cur: Cursor,
    db: str,
    task: dict[str, object],
    scheduled: datetime,
    origin: str,
    root_id: str,
    group: str,
    next_time: datetime | None,
) -> str:
    """One task run: condition, body, history row. Returns SUCCEEDED, FAILED or SKIPPED."""
    session = Session(engine, cur, db, str(task["SCHEMA_NAME"]))
    started = now()
    state, code, message = "SUCCEEDED", None, None
    try:
        execute(cur, f'USE "{db}"."{task["SCHEMA_NAME"]}"')
        condition = task["CONDITION"]
        if condition and not _holds(session, str(condition)):
            state = "SKIPPED"
        else:
            for stmt in body_statements(str(task["DEFINITION"])):
                engine.run_statement(session, stmt)
    except SqlFailure as err:
        session.rollback()
        state, code, message = "FAILED", _code(err.code), err.message
    finally:
        if session.explicit_txn:
            session.rollback()
    if state == "FAILED" and _auto_suspend(cur, db, task):
        state = "FAILED_AND_AUTO_SUSPENDED"
    execute(
        cur,
        f"INSERT INTO {hidden(db, 'TASK_HISTORY')} (QUERY_ID, NAME, SCHEMA_NAME, QUERY_TEXT, "
        "CONDITION_TEXT, STATE, ERROR_CODE, ERROR_MESSAGE, SCHEDULED_TIME, QUERY_START_TIME, "
        "NEXT_SCHEDULED_TIME, COMPLETED_TIME, ROOT_TASK_ID, GRAPH_VERSION, RUN_ID, "
        "SCHEDULED_FROM, ATTEMPT_NUMBER, GRAPH_RUN_GROUP_ID) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, 1, ?)",
        [None if state == "SKIPPED" else str(uuid.uuid4()), task["NAME"], task["SCHEMA_NAME"],
         task["DEFINITION"], task["CONDITION"], state, code, message, scheduled,
         None if state == "SKIPPED" else started, next_time, now(), root_id,
         int(scheduled.timestamp() * 1000), origin, group],
    )  # fmt: skip
    return state


def _auto_suspend(cur: Cursor, db: str, task: dict[str, object]) -> bool:
    """Suspend after SUSPEND_TASK_AFTER_NUM_FAILURES consecutive failures (this one included)."""
    limit = int(str(task.get("SUSPEND_AFTER_FAILURES") or 0))
    if limit <= 0:
        return False
    recent = execute(
        cur,
        f"SELECT STATE FROM {hidden(db, 'TASK_HISTORY')} WHERE SCHEMA_NAME = ? AND NAME = ? "
        "AND STATE <> 'SKIPPED' ORDER BY COMPLETED_TIME DESC LIMIT ?",
        [task["SCHEMA_NAME"], task["NAME"], limit - 1],
    )
    if len(recent) < limit - 1 or any(not str(r[0]).startswith("FAILED") for r in recent):
        return False
    execute(
        cur,
        f"UPDATE {hidden(db, 'TASKS')} SET STATE = 'suspended', LAST_SUSPENDED_ON = ?, "
        "LAST_SUSPENDED_REASON = 'SUSPENDED_DUE_TO_ERRORS' WHERE SCHEMA_NAME = ? AND NAME = ?",
        [now(), task["SCHEMA_NAME"], task["NAME"]],
    )
    return True


def _failures_limit(raw: str | None) -> int:
    if raw is None:
        return 10  # Snowflake's default
    if not raw.isdigit():
        raise compilation_error(f"SUSPEND_TASK_AFTER_NUM_FAILURES must be a number, got {raw}")
    return int(raw)


def body_statements(body: str) -> list[Statement]:
    """The statements of a task body: one statement, or those of a `BEGIN … END` block."""
    text = strip_comments(body).strip().rstrip(";").strip()
    m = re.match(r"BEGIN\b(.*)\bEND$", text, re.I | re.S)
    if m is not None and not re.match(r"BEGIN\s*(TRANSACTION|WORK)?\s*$", text, re.I):
        return parse_request(m[1])
    return parse_request(text)


def _holds(session: Session, condition: str) -> bool:
    try:
        expr = sqlglot.parse_one(f"SELECT ({condition})", read="snowflake")
    except SqlglotError as err:
        raise compilation_error(f"cannot parse WHEN condition {condition!r}: {err}") from err
    _, rows = session.execute(session.to_duckdb(expr, consume=False))
    return bool(rows and rows[0][0])


def _cut(header: str, keyword: str) -> tuple[str, str]:
    m = re.search(rf"\b{keyword}\b", header, re.I)
    if m is None:
        return header, ""
    rest = header[m.end() :]
    stop = re.search(r"\bWHEN\b", rest, re.I) if keyword == "AFTER" else None
    tail = rest[: stop.start()] if stop else rest
    return header[: m.start()] + (rest[stop.start() :] if stop else ""), tail.strip()


def _lookup(cur: Cursor, db: str, schema: str, name: str) -> dict[str, object] | None:
    found = records(
        cur,
        f"SELECT * FROM {hidden(db, 'TASKS')} WHERE SCHEMA_NAME = ? AND NAME = ?",
        [schema, name],
    )
    return found[0] if found else None


def _code(code: str) -> int | None:
    return int(code) if code.isdigit() else None


def _unquote(value: str | None) -> str | None:
    if value is None or not value.startswith("'"):
        return value
    return value[1:-1].replace("''", "'")
