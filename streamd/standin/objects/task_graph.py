"""Running a task graph (§5.5) on the writer thread: WHEN, body, TASK_HISTORY, children, suspend.

A run evaluates the WHEN condition (false → SKIPPED), runs the body (one statement or a
`BEGIN … END` block, each statement autocommitted like Snowflake Scripting does), records the
outcome in the database's TASK_HISTORY, and on success runs the children whose predecessors all
succeeded in the same graph run. `loops.py` decides when roots are due; `tasks.py` holds the DDL.
"""

# ruff: noqa: S608 - identifiers go through hidden(); values are bound parameters.
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime

import sqlglot
from sqlglot.errors import SqlglotError

from streamd.standin.objects.named import TASK, find_object
from streamd.standin.sql.engine import (
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    parse_request,
    strip_comments,
)
from streamd.standin.storage.catalog import hidden, now, records
from streamd.standin.storage.duck import Cursor, execute


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
        fresh = find_object(cur, db, TASK, str(root["SCHEMA_NAME"]), str(root["NAME"]))
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


def _code(code: str) -> int | None:
    return int(code) if code.isdigit() else None
