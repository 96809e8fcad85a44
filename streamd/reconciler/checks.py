"""Checks of what streamd owns and what reads it first: channels, streams and tasks.

Each check is `async def check_x(sql, clock, ctx) -> list[Finding]`; a statement that fails
becomes a warning finding about that check, and the other databases are still checked.
"""

# ruff: noqa: S608 - names go through ident()/qualified()/literal(); config and SHOW output only.

from __future__ import annotations

import math
import re
from typing import Any

from streamd.clock import Clock
from streamd.errors import StreamdError
from streamd.reconciler.context import CheckContext
from streamd.reconciler.query import (
    SqlRunner,
    age_text,
    epoch,
    full_name,
    graded,
    ident,
    ignored,
    interval_s,
    qualified,
    rows,
    rows_or_finding,
    truthy,
)
from streamd.reconciler.report import Finding, Remedy, Severity

_HEALTHY_CHANNEL = (None, "SUCCESS", "ACTIVE")  # §6 item 4: both spellings mean healthy
_TASK_DONE = ("SUCCEEDED", "FAILED", "FAILED_AND_AUTO_SUSPENDED", "CANCELLED")
_TASK_RAN = ("SUCCEEDED", "SKIPPED")  # SKIPPED: the WHEN condition was false, the schedule held
_MAX_HISTORY_H = 7 * 24  # TASK_HISTORY keeps 7 days (§5.5)


async def check_channels(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """Commit lag (rows, seconds), Snowflake error counts and closed channels, from the daemon."""
    del sql  # the daemon's own channel status is the source here, not SQL
    t = ctx.config.thresholds
    now = clock.wall()
    findings: list[Finding] = []
    for ch in ctx.channels():
        name = f"{ch['table']}/{ch['channel']}"
        if ignored(ch["table"], ctx.config.ignore):
            continue
        lag_s = float(ch.get("commit_lag_s") or 0.0)
        waiting = int((ch.get("spool") or {}).get("rows_waiting") or 0)
        lag_grade = graded(lag_s, t.channel_lag_s, t.critical_factor)
        rows_grade = graded(waiting, t.channel_lag_rows, t.critical_factor)
        if lag_grade or rows_grade:
            worst: Severity = "critical" if "critical" in (lag_grade, rows_grade) else "warning"
            findings.append(
                Finding(
                    "channel",
                    worst,
                    name,
                    f"commit lag {age_text(lag_s)}, {waiting} rows not yet committed",
                    "Snowflake commits slowly or appends fail: look for request_retried and "
                    "channel_reopening events; raise delivery.channels_per_table if it is throughput",
                )
            )
        grew = ctx.errors.growth(
            name, now, int(ch.get("rows_error_count") or 0), t.channel_error_window_s
        )
        if grew > 0:
            findings.append(
                Finding(
                    "channel_errors",
                    "warning",
                    name,
                    f"{grew} rows rejected by Snowflake in the last "
                    f"{age_text(t.channel_error_window_s)}; last error: "
                    f"{ch.get('last_error_message') or 'none given'}",
                    "compare the rows with the table's columns and types; query "
                    "ERROR_TABLE(<table>) for the rejected rows",
                )
            )
        if not ch.get("open", True) or ch.get("status_code") not in _HEALTHY_CHANNEL:
            findings.append(
                Finding(
                    "channel_state",
                    "warning",
                    name,
                    f"channel is {'open' if ch.get('open', True) else 'not open'}, status "
                    f"{ch.get('status_code') or 'unknown'}",
                    "streamd reopens channels by itself; if this persists, check the pipe and grants",
                )
            )
    return findings


async def check_streams(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """Streams that are stale, or whose STALE_AFTER is near (SHOW STREAMS, §5.1)."""
    cfg = ctx.config
    now = clock.wall()
    findings: list[Finding] = []
    for db in ctx.databases:
        statement = f"SHOW STREAMS IN DATABASE {ident(db)}"
        streams = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "stream", f"database {db}"
        )
        if streams is None:
            continue
        tasks: list[dict[str, Any]] | None = None
        for stream in streams:
            name = full_name(stream)
            if ignored(name, cfg.ignore):
                continue
            if truthy(stream.get("stale")):
                findings.append(
                    Finding(
                        "stream",
                        "critical",
                        name,
                        "stream is stale: its offset is older than the table's retention and it "
                        "can no longer be read",
                        f"recreate it (CREATE OR REPLACE STREAM {name} …) and backfill what the "
                        "tasks that read it missed",
                    )
                )
                continue
            stale_after = epoch(stream.get("stale_after"))
            if stale_after is None:
                continue
            left = stale_after - now
            if left > cfg.thresholds.stream_stale_warning_s:
                continue
            if tasks is None:
                tasks = await _tasks_quietly(sql, db, cfg.query_timeout_s)
            readers = _readers(name, tasks)
            findings.append(
                Finding(
                    "stream",
                    "warning" if left > 0 else "critical",
                    name,
                    f"stream goes stale in {age_text(left)} (STALE_AFTER) unless it is consumed"
                    if left > 0
                    # STALE_AFTER "may be slightly inaccurate in both directions" (§5.1).
                    else "stream is past its STALE_AFTER and may already be stale",
                    "run the task that reads it ("
                    + (", ".join(readers) if readers else "none found")
                    + ") or consume it with DML",
                    remedies=tuple(
                        Remedy("execute_task", f"EXECUTE TASK {qualified(task)}")
                        for task in readers
                    ),
                )
            )
    return findings


async def check_tasks(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """Tasks suspended, whose last run failed, or late (SHOW TASKS and TASK_HISTORY, §5.5)."""
    cfg = ctx.config
    now = clock.wall()
    findings: list[Finding] = []
    for db in ctx.databases:
        statement = f"SHOW TASKS IN DATABASE {ident(db)}"
        tasks = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "task", f"database {db}"
        )
        if tasks is None:
            continue
        tasks = [t for t in tasks if not ignored(full_name(t), cfg.ignore)]
        if not tasks:
            continue
        slowest = max((interval_s(t.get("schedule")) or 0.0 for t in tasks), default=0.0)
        hours = min(
            _MAX_HISTORY_H, max(1, math.ceil(slowest * cfg.thresholds.task_late_factor / 3600) + 1)
        )
        history_sql = (
            "SELECT NAME, DATABASE_NAME, SCHEMA_NAME, STATE, ERROR_CODE, ERROR_MESSAGE, "
            "SCHEDULED_TIME, COMPLETED_TIME "
            f"FROM TABLE({ident(db)}.INFORMATION_SCHEMA.TASK_HISTORY("
            f"SCHEDULED_TIME_RANGE_START=>DATEADD('hour', -{hours}, CURRENT_TIMESTAMP()), "
            "RESULT_LIMIT=>10000))"
        )
        history = await rows_or_finding(
            sql, history_sql, cfg.query_timeout_s, findings, "task_history", f"database {db}"
        )
        runs: dict[str, list[dict[str, Any]]] = {}
        for run in history or []:
            runs.setdefault(full_name(run).upper(), []).append(run)
        for task in tasks:
            findings += _judge_task(
                task, runs.get(full_name(task).upper(), []), history is not None, now, ctx
            )
    return findings


def _judge_task(
    task: dict[str, Any],
    runs: list[dict[str, Any]],
    have_history: bool,
    now: float,
    ctx: CheckContext,
) -> list[Finding]:
    name = full_name(task)
    found: list[Finding] = []
    suspended = str(task.get("state") or "").lower() == "suspended"
    resumed = ctx.resumes.observe(name, suspended, now)
    if suspended:
        reason = task.get("last_suspended_reason") or "no reason given"
        found.append(
            Finding(
                "task",
                "critical",
                name,
                f"task is suspended ({reason}); nothing downstream of it moves",
                f"fix what suspended it, then ALTER TASK {name} RESUME",
                remedies=(Remedy("resume_task", f"ALTER TASK {qualified(name)} RESUME"),),
            )
        )
        return found
    if not have_history:
        return found
    done = sorted(
        (r for r in runs if str(r.get("state")) in _TASK_DONE),
        key=lambda r: epoch(r.get("completed_time")) or epoch(r.get("scheduled_time")) or 0.0,
    )
    if done and str(done[-1].get("state")).startswith("FAILED"):
        last = done[-1]
        found.append(
            Finding(
                "task_failed",
                "critical",
                name,
                f"last run failed: {last.get('error_code') or ''} {last.get('error_message') or ''}".strip(),
                f"fix the statement or the data it reads, then EXECUTE TASK {name} to retry now",
            )
        )
    every = interval_s(task.get("schedule"))
    if every is None:
        return found  # CRON or triggered by a predecessor: no fixed interval to be late against
    allowed = every * ctx.config.thresholds.task_late_factor
    ran = [
        epoch(r.get("completed_time")) or epoch(r.get("scheduled_time"))
        for r in runs
        if str(r.get("state")) in _TASK_RAN
    ]
    last_ok = max((t for t in ran if t is not None), default=None)
    # Late counts from the newest of: last good run, creation, a resume this reconciler saw.
    marks = [last_ok, epoch(task.get("created_on")), resumed]
    since = max((m for m in marks if m is not None), default=None)
    if since is not None and now - since > allowed:
        found.append(
            Finding(
                "task_late",
                "warning",
                name,
                f"no successful run for {age_text(now - since)} (schedule {task.get('schedule')})",
                "check the warehouse (suspended, queued) and TASK_HISTORY for long runs",
            )
        )
    return found


async def _tasks_quietly(sql: SqlRunner, db: str, timeout_s: int) -> list[dict[str, Any]]:
    # Only used to name the tasks that read a stream; the task check reports a failing SHOW TASKS.
    try:
        return await rows(sql, f"SHOW TASKS IN DATABASE {ident(db)}", timeout_s)
    except StreamdError:
        return []


def _readers(stream: str, tasks: list[dict[str, Any]]) -> list[str]:
    """Tasks whose definition or WHEN condition names `stream` (its plain or qualified name)."""
    short = stream.split(".")[-1]
    pattern = re.compile(rf"(?<![A-Za-z0-9_$]){re.escape(short)}(?![A-Za-z0-9_$])", re.IGNORECASE)
    return [
        full_name(task)
        for task in tasks
        if pattern.search(f"{task.get('definition') or ''} {task.get('condition') or ''}")
    ]
