"""Tasks (§5.5): CREATE/ALTER/EXECUTE/DROP TASK, parsed and kept in the database's catalog.

A task starts suspended; `ALTER TASK … RESUME` lets `loops.py` schedule it. Running a task graph
(condition, body, history, children) is `task_graph.py`; EXECUTE TASK runs one there at once.
"""

# ruff: noqa: S608 - identifiers go through hidden()/quote(); values are bound parameters.
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable

from streamd.standin.objects.cron import ScheduleError, parse_schedule
from streamd.standin.objects.named import (
    NAME,
    OPTION,
    TASK,
    delete_object,
    drop_object,
    find_object,
    unquote,
)
from streamd.standin.objects.task_graph import body_statements, run_graph
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
from streamd.standin.storage.catalog import hidden, now
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
    options = {k.upper(): v for k, v in OPTION.findall(header)}
    for key in options:
        if key not in _KNOWN_OPTIONS:
            raise unsupported(f"CREATE TASK option {key}")
    schedule = unquote(options.get("SCHEDULE"))
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
        delete_object(session.cur, db, TASK, schema, name)
        execute(
            session.cur,
            f"INSERT INTO {hidden(db, 'TASKS')} (SCHEMA_NAME, NAME, ID, CREATED_ON, WAREHOUSE, "
            "SCHEDULE, PREDECESSORS, STATE, DEFINITION, CONDITION, COMMENT, ALLOW_OVERLAPPING, "
            "SUSPEND_AFTER_FAILURES) VALUES (?, ?, ?, ?, ?, ?, ?, 'suspended', ?, ?, ?, ?, ?)",
            [schema, name, str(uuid.uuid4()), now(), options.get("WAREHOUSE"), schedule,
             json.dumps(predecessors), body, condition or None, unquote(options.get("COMMENT")),
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
        options = {k.upper(): v for k, v in OPTION.findall(rest)}
        if not options or set(options) - _KNOWN_OPTIONS:
            raise unsupported(f"ALTER TASK … SET {rest}")
        sets, params = [], []
        columns = {"SCHEDULE": "SCHEDULE", "WAREHOUSE": "WAREHOUSE", "COMMENT": "COMMENT",
                   "SUSPEND_TASK_AFTER_NUM_FAILURES": "SUSPEND_AFTER_FAILURES"}  # fmt: skip
        for key, raw in options.items():
            value: object = unquote(raw)
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
    return drop_object(session, stmt, TASK)


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


def _failures_limit(raw: str | None) -> int:
    if raw is None:
        return 10  # Snowflake's default
    if not raw.isdigit():
        raise compilation_error(f"SUSPEND_TASK_AFTER_NUM_FAILURES must be a number, got {raw}")
    return int(raw)


def _cut(header: str, keyword: str) -> tuple[str, str]:
    m = re.search(rf"\b{keyword}\b", header, re.I)
    if m is None:
        return header, ""
    rest = header[m.end() :]
    stop = re.search(r"\bWHEN\b", rest, re.I) if keyword == "AFTER" else None
    tail = rest[: stop.start()] if stop else rest
    return header[: m.start()] + (rest[stop.start() :] if stop else ""), tail.strip()


def _lookup(cur: Cursor, db: str, schema: str, name: str) -> dict[str, object] | None:
    return find_object(cur, db, TASK, schema, name)
