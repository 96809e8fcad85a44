"""Checks of what the pipelines build: dynamic tables, Iceberg snapshots, Parquet exports, pipes.

Same contract as `checks.py`: `async def check_x(sql, clock, ctx) -> list[Finding]`.
"""

# ruff: noqa: S608 - names go through ident()/qualified()/literal(); config and SHOW output only.

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import anyio
import orjson

from streamd.clock import Clock
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
    literal,
    rows_or_finding,
    truthy,
)
from streamd.reconciler.report import Finding

_REFRESH_DONE = ("SUCCEEDED", "FAILED", "UPSTREAM_FAILED", "CANCELLED")
_PIPE_PAUSED = ("PAUSED",)  # an operator's choice: a warning, not an outage


async def check_dynamic_tables(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """Dynamic tables behind their TARGET_LAG, suspended, or whose last refresh failed (§5.6)."""
    cfg = ctx.config
    t = cfg.thresholds
    now = clock.wall()
    findings: list[Finding] = []
    for db in ctx.databases:
        statement = f"SHOW DYNAMIC TABLES IN DATABASE {ident(db)}"
        tables = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "dynamic_table", f"database {db}"
        )
        if tables is None:
            continue
        tables = [d for d in tables if not ignored(full_name(d), cfg.ignore)]
        if not tables:
            continue
        history_sql = (
            "SELECT NAME, SCHEMA_NAME, DATABASE_NAME, STATE, STATE_CODE, STATE_MESSAGE, "
            "DATA_TIMESTAMP, REFRESH_END_TIME "
            f"FROM TABLE({ident(db)}.INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY("
            "RESULT_LIMIT=>10000))"
        )
        history = (
            await rows_or_finding(
                sql,
                history_sql,
                cfg.query_timeout_s,
                findings,
                "dynamic_table_refresh",
                f"database {db}",
            )
            or []
        )
        last: dict[str, dict[str, Any]] = {}
        for refresh in history:
            if str(refresh.get("state")) not in _REFRESH_DONE:
                continue
            key = full_name(refresh).upper()
            when = _refresh_time(refresh)
            if key not in last or when >= _refresh_time(last[key]):
                last[key] = refresh
        for table in tables:
            name = full_name(table)
            if str(table.get("scheduling_state") or "").upper() == "SUSPENDED":
                findings.append(
                    Finding(
                        "dynamic_table",
                        "critical",
                        name,
                        "dynamic table is suspended: it no longer refreshes",
                        f"ALTER DYNAMIC TABLE {name} RESUME once what suspended it is fixed",
                    )
                )
                continue
            latest = last.get(name.upper())
            if latest is not None and str(latest.get("state")) in ("FAILED", "UPSTREAM_FAILED"):
                upstream = latest.get("state") == "UPSTREAM_FAILED"
                findings.append(
                    Finding(
                        "dynamic_table_refresh",
                        "warning" if upstream else "critical",
                        name,
                        ("an upstream refresh failed" if upstream else "last refresh failed")
                        + f": {latest.get('state_code') or ''} {latest.get('state_message') or ''}".rstrip(),
                        "fix the failing definition or its inputs; "
                        f"ALTER DYNAMIC TABLE {name} REFRESH retries now",
                    )
                )
            target = interval_s(table.get("target_lag"))
            data_ts = epoch(table.get("data_timestamp"))
            if target is None or data_ts is None:
                continue  # DOWNSTREAM lag follows its consumers; no data yet has no lag
            lag = now - data_ts
            grade = graded(lag, target * t.dynamic_table_lag_factor, t.critical_factor)
            if grade is not None:
                findings.append(
                    Finding(
                        "dynamic_table_lag",
                        grade,
                        name,
                        f"data is {age_text(lag)} old, target lag {table.get('target_lag')}",
                        "check its warehouse and refresh history; refreshes that run longer than "
                        "the target lag need a bigger warehouse or a longer TARGET_LAG",
                    )
                )
    return findings


async def check_iceberg(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """The newest snapshot of each watched Iceberg table is young enough (§5.8)."""
    cfg = ctx.config
    now = clock.wall()
    findings: list[Finding] = []
    for watch in cfg.iceberg:
        # For Snowflake-managed tables this call also writes fresh metadata when DML happened since
        # the last one (§5.8): the answer is as new as it gets, at the price of not being a pure read.
        statement = f"SELECT SYSTEM$GET_ICEBERG_TABLE_INFORMATION({literal(watch.table)})"
        answer = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "iceberg", watch.table
        )
        if answer is None:
            continue
        info = _json_cell(answer)
        location = str(info.get("metadataLocation") or "")
        if info.get("status") not in (None, "success") or not location:
            findings.append(
                Finding(
                    "iceberg",
                    "warning",
                    watch.table,
                    f"no Iceberg metadata: status {info.get('status')!r}",
                    "check that the table is an Iceberg table and the role owns it",
                )
            )
            continue
        path = _local_path(location)
        if path is None:
            findings.append(
                Finding(
                    "iceberg",
                    "info",
                    watch.table,
                    f"snapshot age not checked: metadata at {location} is not a local file",
                    "watch this table through a freshness target instead",
                )
            )
            continue
        try:
            metadata = orjson.loads(await anyio.Path(path).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            findings.append(
                Finding(
                    "iceberg",
                    "warning",
                    watch.table,
                    f"cannot read Iceberg metadata {location}: {exc}",
                    "check the warehouse path is readable by streamd",
                )
            )
            continue
        stamps = [s.get("timestamp-ms") for s in metadata.get("snapshots") or []]
        newest = max((float(s) / 1000 for s in stamps if isinstance(s, int | float)), default=None)
        if newest is None:
            findings.append(
                Finding(
                    "iceberg",
                    "warning",
                    watch.table,
                    "Iceberg table has no snapshot yet",
                    "check the task that writes it (check `task`)",
                )
            )
            continue
        age = now - newest
        grade = graded(age, watch.max_age_s, cfg.thresholds.critical_factor)
        if grade is not None:
            findings.append(
                Finding(
                    "iceberg",
                    grade,
                    watch.table,
                    f"newest snapshot is {age_text(age)} old (limit {age_text(watch.max_age_s)})",
                    "check the task that writes it and the stream it reads",
                )
            )
    return findings


async def check_exports(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """The newest Parquet file of each watched export location is young enough (LIST @stage)."""
    cfg = ctx.config
    now = clock.wall()
    findings: list[Finding] = []
    for watch in cfg.exports:
        statement = f"LIST {watch.stage}"
        files = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "export", watch.stage
        )
        if files is None:
            continue
        times = [epoch(f.get("last_modified")) for f in files]
        newest = max((t for t in times if t is not None), default=None)
        age = None if newest is None else now - newest
        grade = (
            "warning"
            if age is None
            else graded(age, watch.max_age_s, cfg.thresholds.critical_factor)
        )
        if grade is None:
            continue
        if watch.stream is not None:
            # No changes waiting means no file is due, however old the last one is. On an empty
            # stream this call also keeps the stream from going stale (§5.2), which is harmless.
            probe = f"SELECT SYSTEM$STREAM_HAS_DATA({literal(watch.stream)})"
            has_data = await rows_or_finding(
                sql, probe, cfg.query_timeout_s, findings, "export", watch.stage
            )
            if has_data is None:
                continue
            if not truthy(_first_cell(has_data)):
                continue
        findings.append(
            Finding(
                "export",
                grade,
                watch.stage,
                ("no file exported yet" if age is None else f"newest file is {age_text(age)} old")
                + (f" while {watch.stream} has changes waiting" if watch.stream else ""),
                "check the export task (suspended or failing: check `task`) and the stage",
            )
        )
    return findings


async def check_pipes(sql: SqlRunner, clock: Clock, ctx: CheckContext) -> list[Finding]:
    """Classic pipes: execution state, backlog and errors (SYSTEM$PIPE_STATUS), failed loads (COPY_HISTORY)."""
    del clock  # the pipe status and COPY_HISTORY carry their own times
    cfg = ctx.config
    findings: list[Finding] = []
    for watch in cfg.pipes:
        statement = f"SELECT SYSTEM$PIPE_STATUS({literal(watch.pipe)})"
        answer = await rows_or_finding(
            sql, statement, cfg.query_timeout_s, findings, "pipe", watch.pipe
        )
        status = _json_cell(answer) if answer is not None else None
        if status is not None:
            findings += _judge_pipe(watch.pipe, status, cfg.thresholds.pipe_pending_files)
        if watch.table is None:
            continue
        db, schema, table = watch.table.split(".")
        window_h = max(1, round(cfg.thresholds.load_history_window_s / 3600))
        history_sql = (
            "SELECT FILE_NAME, STATUS, ERROR_COUNT, FIRST_ERROR_MESSAGE, LAST_LOAD_TIME "
            f"FROM TABLE({ident(db)}.INFORMATION_SCHEMA.COPY_HISTORY("
            f"TABLE_NAME=>{literal(f'{schema}.{table}')}, "
            f"START_TIME=>DATEADD('hour', -{window_h}, CURRENT_TIMESTAMP())))"
        )
        loads = await rows_or_finding(
            sql, history_sql, cfg.query_timeout_s, findings, "pipe_loads", watch.pipe
        )
        if loads is None:
            continue
        failed = [
            f
            for f in loads
            if str(f.get("status") or "").lower() in ("load failed", "partially loaded")
        ]
        if failed:
            first = failed[0]
            findings.append(
                Finding(
                    "pipe_loads",
                    "warning",
                    watch.pipe,
                    f"{len(failed)} of {len(loads)} files in the last {window_h} h failed or loaded "
                    f"partially; {first.get('file_name')}: {first.get('first_error_message')}",
                    f"fix the files or the file format, then re-stage them (COPY_HISTORY of {watch.table})",
                )
            )
    return findings


def _judge_pipe(pipe: str, status: dict[str, Any], pending_limit: int) -> list[Finding]:
    state = str(status.get("executionState") or "UNKNOWN")
    if state != "RUNNING":
        return [
            Finding(
                "pipe",
                "warning" if state in _PIPE_PAUSED else "critical",
                pipe,
                f"pipe is {state}" + (f": {status['error']}" if status.get("error") else ""),
                f"fix the cause, then ALTER PIPE {pipe} SET PIPE_EXECUTION_PAUSED = FALSE",
            )
        ]
    found: list[Finding] = []
    pending = int(status.get("pendingFileCount") or 0)
    if pending > pending_limit:
        found.append(
            Finding(
                "pipe_backlog",
                "warning",
                pipe,
                f"{pending} files pending (oldest {status.get('oldestPendingFilePath') or '?'})",
                "loads are slower than arrivals; check COPY_HISTORY and the file sizes",
            )
        )
    if status.get("error"):
        found.append(
            Finding(
                "pipe_error",
                "warning",
                pipe,
                f"last pipe error at {status.get('lastPipeErrorTimestamp')}: {status['error']}",
                "see COPY_HISTORY for the files involved",
            )
        )
    return found


def _refresh_time(refresh: dict[str, Any]) -> float:
    return epoch(refresh.get("refresh_end_time")) or epoch(refresh.get("data_timestamp")) or 0.0


def _first_cell(answer: list[dict[str, Any]]) -> Any:
    return next(iter(answer[0].values()), None) if answer else None


def _json_cell(answer: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON object a SYSTEM$ function returns as text (or as a VARIANT already parsed)."""
    cell = _first_cell(answer)
    if isinstance(cell, dict):
        return cell
    if isinstance(cell, str):
        try:
            parsed = orjson.loads(cell)
        except orjson.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _local_path(location: str) -> Path | None:
    """A metadata location streamd can read itself: `file://…` or a plain path."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and location.startswith("/"):
        return Path(location)
    return None
