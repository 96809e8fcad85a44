"""SHOW STREAMS / TASKS / DYNAMIC TABLES and INFORMATION_SCHEMA table functions (§5.1, §5.5, §5.6).

Column names and order are the documented ones (lower case for SHOW, upper case for the table
functions), because the reconciler is written against exactly those forms.
"""

# ruff: noqa: S608 - identifiers go through hidden()/quote(); values are literals we escape.
from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

from sqlglot import exp

from streamd.standin.objects import streams
from streamd.standin.objects.named import NAME
from streamd.standin.sql.engine import (
    Result,
    Session,
    SqlEngine,
    SqlFailure,
    Statement,
    compilation_error,
    strip_comments,
    translate_expr,
)
from streamd.standin.storage.catalog import columns_of, databases, hidden, now, records, table

_SHOW = re.compile(
    r"SHOW\s+(?P<terse>TERSE\s+)?(?P<kind>STREAMS|TASKS|DYNAMIC\s+TABLES)"
    r"(?:\s+LIKE\s+'(?P<like>(?:[^']|'')*)')?"
    rf"(?:\s+IN\s+(?P<scope>ACCOUNT|DATABASE|SCHEMA)?\s*(?P<target>{NAME})?)?"
    r"(?:\s+STARTS\s+WITH\s+'(?P<starts>(?:[^']|'')*)')?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$",
    re.I | re.S,
)
TS = "TIMESTAMP WITH TIME ZONE"
_STREAM_COLUMNS = [("created_on", TS), ("name", "VARCHAR"), ("database_name", "VARCHAR"),
    ("schema_name", "VARCHAR"), ("owner", "VARCHAR"), ("comment", "VARCHAR"),
    ("table_name", "VARCHAR"), ("source_type", "VARCHAR"), ("base_tables", "VARCHAR"),
    ("type", "VARCHAR"), ("stale", "VARCHAR"), ("mode", "VARCHAR"), ("stale_after", TS),
    ("invalid_reason", "VARCHAR"), ("owner_role_type", "VARCHAR")]  # fmt: skip
_TASK_COLUMNS = [("created_on", TS), ("name", "VARCHAR"), ("id", "VARCHAR"),
    ("database_name", "VARCHAR"), ("schema_name", "VARCHAR"), ("owner", "VARCHAR"),
    ("comment", "VARCHAR"), ("warehouse", "VARCHAR"), ("schedule", "VARCHAR"),
    ("scheduling_mode", "VARCHAR"), ("target_completion_interval", "VARCHAR"),
    ("predecessors", "VARCHAR"), ("state", "VARCHAR"), ("definition", "VARCHAR"),
    ("condition", "VARCHAR"), ("allow_overlapping_execution", "VARCHAR"),
    ("error_integration", "VARCHAR"), ("success_integration", "VARCHAR"),
    ("last_committed_on", TS), ("last_suspended_on", TS), ("owner_role_type", "VARCHAR"),
    ("config", "VARCHAR"), ("last_suspended_reason", "VARCHAR"),
    ("task_relations", "VARCHAR"), ("execute_as_user", "VARCHAR")]  # fmt: skip
_DT_COLUMNS = [("created_on", TS), ("name", "VARCHAR"), ("database_name", "VARCHAR"),
    ("schema_name", "VARCHAR"), ("cluster_by", "VARCHAR"), ("rows", "BIGINT"),
    ("bytes", "BIGINT"), ("owner", "VARCHAR"), ("target_lag", "VARCHAR"),
    ("refresh_mode", "VARCHAR"), ("refresh_mode_reason", "VARCHAR"), ("warehouse", "VARCHAR"),
    ("comment", "VARCHAR"), ("text", "VARCHAR"), ("automatic_clustering", "VARCHAR"),
    ("scheduling_state", "VARCHAR"), ("last_suspended_on", TS), ("is_clone", "VARCHAR"),
    ("is_replica", "VARCHAR"), ("is_iceberg", "VARCHAR"), ("data_timestamp", TS),
    ("owner_role_type", "VARCHAR")]  # fmt: skip
OWNER = "ACCOUNTADMIN"


def register(engine: SqlEngine) -> None:
    """Install the SHOW handlers and the table-function rewriter."""
    engine.register(r"SHOW\s+(TERSE\s+)?(STREAMS|TASKS|DYNAMIC\s+TABLES)\b", show)
    engine.register_rewriter(rewrite_table_functions)
    engine.register_table_function("TASK_HISTORY", lambda _, db, args: _task_history(db, args))
    engine.register_table_function(
        "DYNAMIC_TABLE_REFRESH_HISTORY", lambda _, db, args: _refresh_history(db, args)
    )
    engine.register_table_function("DYNAMIC_TABLES", lambda _, db, args: _dynamic_tables(db, args))


def show(session: Session, stmt: Statement) -> Result:
    """`SHOW STREAMS | TASKS | DYNAMIC TABLES [LIKE …] [IN …] [STARTS WITH …] [LIMIT n]`."""
    m = _SHOW.match(strip_comments(stmt.text))
    if m is None:
        raise compilation_error(f"cannot parse {' '.join(stmt.text.split())[:120]}")
    kind = " ".join(m["kind"].upper().split())
    out: list[tuple[Any, ...]] = []
    for db, schema in _scopes(session, m["scope"], m["target"]):
        if kind == "STREAMS":
            out += _stream_rows(session, db, schema)
        elif kind == "TASKS":
            out += _task_rows(session, db, schema)
        else:
            out += _dt_rows(session, db, schema)
    like = m["like"].replace("''", "'") if m["like"] else None
    starts = m["starts"].replace("''", "'") if m["starts"] else None
    out = [r for r in out if (like is None or _like(str(r[1]), like))
           and (starts is None or str(r[1]).startswith(starts))]  # fmt: skip
    out.sort(
        key=lambda r: (r[2] if kind != "TASKS" else r[3], r[3] if kind != "TASKS" else r[4], r[1])
    )
    if m["limit"]:
        out = out[: int(m["limit"])]
    columns = {"STREAMS": _STREAM_COLUMNS, "TASKS": _TASK_COLUMNS}.get(kind, _DT_COLUMNS)
    return Result(list(columns), out)


def _scopes(
    session: Session, scope: str | None, target: str | None
) -> list[tuple[str, str | None]]:
    attached = databases(session.cur)
    scope = (scope or "").upper()
    if not scope and not target and session.database in attached:
        return [(session.database, None)]  # Snowflake's default: the current database, …
    if scope == "ACCOUNT" or (not scope and not target):
        return [(db, None) for db in attached]  # … else the account
    if scope == "DATABASE":
        db = session.qualify(f"{target}.X.X")[0] if target else session.database
        if db is None:
            raise compilation_error(
                "SHOW … IN DATABASE needs a database name or a current database"
            )
        if db not in attached:
            raise SqlFailure(
                "002043",
                "02000",
                f"SQL compilation error:\nDatabase '{db}' does not exist or not authorized.",
            )
        return [(db, None)]
    if target is None:
        if session.database is None or session.schema is None:
            raise compilation_error("SHOW … IN SCHEMA needs a schema name or a current schema")
        return [(session.database, session.schema)]
    db, schema, _ = session.qualify(f"{target}.X")
    return [(db, schema)] if db in attached else []


def _where(schema: str | None) -> tuple[str, list[object]]:
    return ("WHERE SCHEMA_NAME = ?", [schema]) if schema else ("", [])


def _stream_rows(session: Session, db: str, schema: str | None) -> list[tuple[Any, ...]]:
    where, params = _where(schema)
    rows = []
    for s in records(session.cur, f"SELECT * FROM {hidden(db, 'STREAMS')} {where}", params):
        after = streams.stale_after(session, db, s)
        rows.append((s["CREATED_ON"], s["NAME"], db, s["SCHEMA_NAME"], OWNER, s["COMMENT"],
                     f"{db}.{s['TABLE_SCHEMA']}.{s['TABLE_NAME']}", "Table", None, "DELTA",
                     "true" if now() > after else "false", s["MODE"], after, "N/A", "ROLE"))  # fmt: skip
    return rows


def _task_rows(session: Session, db: str, schema: str | None) -> list[tuple[Any, ...]]:
    where, params = _where(schema)
    rows = []
    for t in records(session.cur, f"SELECT * FROM {hidden(db, 'TASKS')} {where}", params):
        preds = json.loads(str(t["PREDECESSORS"]))
        rows.append((t["CREATED_ON"], t["NAME"], t["ID"], db, t["SCHEMA_NAME"], OWNER,
                     t["COMMENT"], t["WAREHOUSE"], t["SCHEDULE"],
                     None if t["WAREHOUSE"] else "FIXED", None, json.dumps(preds), t["STATE"],
                     t["DEFINITION"], t["CONDITION"],
                     "true" if t["ALLOW_OVERLAPPING"] else "false", "null", "null",
                     t["LAST_COMMITTED_ON"] or t["CREATED_ON"], t["LAST_SUSPENDED_ON"], "ROLE",
                     None, t["LAST_SUSPENDED_REASON"], json.dumps({"Predecessors": preds}),
                     None))  # fmt: skip
    return rows


def _dt_rows(session: Session, db: str, schema: str | None) -> list[tuple[Any, ...]]:
    where, params = _where(schema)
    rows = []
    for d in records(session.cur, f"SELECT * FROM {hidden(db, 'DYNAMIC_TABLES')} {where}", params):
        count = None
        if columns_of(session.cur, db, str(d["SCHEMA_NAME"]), str(d["NAME"])):
            count = session.execute(
                f"SELECT count(*) FROM {table(db, str(d['SCHEMA_NAME']), str(d['NAME']))}"
            )[1][0][0]
        mode = str(d["REFRESH_MODE"])
        reason = None if mode == "FULL" else "the stand-in always refreshes fully"
        rows.append((d["CREATED_ON"], d["NAME"], db, d["SCHEMA_NAME"], "", count, None, OWNER,
                     d["TARGET_LAG"], "FULL", reason, d["WAREHOUSE"], d["COMMENT"],
                     f"create or replace dynamic table {d['NAME']} "
                     f"target_lag = '{d['TARGET_LAG']}' as {d['QUERY']}",
                     "OFF", d["STATE"], d["SUSPENDED_ON"], "false", "false", "false",
                     d["DATA_TIMESTAMP"], "ROLE"))  # fmt: skip
    return rows


def _like(name: str, pattern: str) -> bool:
    glob = pattern.replace("*", "[*]").replace("?", "[?]").replace("%", "*").replace("_", "?")
    return fnmatch.fnmatchcase(name.upper(), glob.upper())


# ---- table functions ------------------------------------------------------------------------


def rewrite_table_functions(session: Session, expr: exp.Expr, consume: bool) -> exp.Expr:
    """`TABLE([db.]INFORMATION_SCHEMA.TASK_HISTORY(…))` and friends → queries on the catalog."""
    for node in list(expr.find_all(exp.TableFromRows)):
        call, prefix = node.this, []
        while isinstance(call, exp.Dot):
            prefix.append(call.this)
            call = call.expression
        if not isinstance(call, exp.Anonymous):
            continue
        parts = [p.name.upper() for p in _flatten(prefix)]
        if not parts or parts[-1] != "INFORMATION_SCHEMA":
            continue
        db = parts[-2] if len(parts) >= 2 else session.database
        if db is None:
            raise compilation_error(
                "INFORMATION_SCHEMA functions need a current database or db.INFORMATION_SCHEMA"
            )
        args = _kwargs(call)
        fn = session.engine.table_functions.get(call.name.upper())
        if fn is None:
            raise compilation_error(
                f"Unknown function INFORMATION_SCHEMA.{call.name.upper()} in the stand-in"
            )
        node.replace(session.splice(fn(session, db, args), node.alias or None))
    return expr


def _flatten(prefix: list[exp.Expr]) -> list[exp.Expr]:
    out: list[exp.Expr] = []
    for p in prefix:
        if isinstance(p, exp.Dot):
            out += _flatten([p.this, p.expression])
        else:
            out.append(p)
    return out


def _kwargs(call: exp.Anonymous) -> dict[str, str]:
    args: dict[str, str] = {}
    for arg in call.expressions:
        if not isinstance(arg, exp.Kwarg):
            raise compilation_error(f"{call.name} takes named arguments (NAME => value)")
        args[arg.this.name.upper()] = translate_expr(arg.expression)
    return args


def _limit(args: dict[str, str], default: int = 100) -> int:
    raw = args.get("RESULT_LIMIT")
    return int(raw) if raw and raw.isdigit() else default


def _task_history(db: str, args: dict[str, str]) -> str:
    week = f"now() - INTERVAL {7 * 86400} SECOND"
    where = [f"SCHEDULED_TIME >= {args.get('SCHEDULED_TIME_RANGE_START', week)}"]
    if "SCHEDULED_TIME_RANGE_END" in args:
        where.append(f"SCHEDULED_TIME < {args['SCHEDULED_TIME_RANGE_END']}")
    if "TASK_NAME" in args:
        where.append(f"upper(NAME) = upper({args['TASK_NAME']})")
    if "SCHEMA_NAME" in args:
        where.append(f"upper(SCHEMA_NAME) = upper({args['SCHEMA_NAME']})")
    if args.get("ERROR_ONLY", "").upper() == "TRUE":
        where.append("STATE LIKE 'FAILED%'")
    if "ROOT_TASK_ID" in args:
        where.append(f"ROOT_TASK_ID = {args['ROOT_TASK_ID']}")
    history = hidden(db, "TASK_HISTORY")
    # The next scheduled run of a started root task shows as a SCHEDULED row (§5.5), taken from
    # the NEXT_SCHEDULED_TIME its last run recorded.
    upcoming = (
        "SELECT NULL AS QUERY_ID, h.NAME, h.SCHEMA_NAME, h.QUERY_TEXT, h.CONDITION_TEXT, "
        "'SCHEDULED' AS STATE, NULL::BIGINT AS ERROR_CODE, NULL AS ERROR_MESSAGE, "
        "h.NEXT_SCHEDULED_TIME AS SCHEDULED_TIME, NULL::TIMESTAMPTZ AS QUERY_START_TIME, "
        "h.NEXT_SCHEDULED_TIME, NULL::TIMESTAMPTZ AS COMPLETED_TIME, h.ROOT_TASK_ID, "
        "h.GRAPH_VERSION, epoch_ms(h.NEXT_SCHEDULED_TIME) AS RUN_ID, NULL AS RETURN_VALUE, "
        "'SCHEDULE' AS SCHEDULED_FROM, 0 AS ATTEMPT_NUMBER, NULL AS GRAPH_RUN_GROUP_ID "
        f"FROM {history} h JOIN {hidden(db, 'TASKS')} t "
        "ON t.SCHEMA_NAME = h.SCHEMA_NAME AND t.NAME = h.NAME AND t.STATE = 'started' "
        "WHERE h.NEXT_SCHEDULED_TIME > now() "
        "QUALIFY row_number() OVER (PARTITION BY h.SCHEMA_NAME, h.NAME "
        "ORDER BY h.SCHEDULED_TIME DESC) = 1"
    )
    runs = (
        "SELECT QUERY_ID, NAME, SCHEMA_NAME, QUERY_TEXT, CONDITION_TEXT, STATE, ERROR_CODE, "
        "ERROR_MESSAGE, SCHEDULED_TIME, QUERY_START_TIME, NEXT_SCHEDULED_TIME, COMPLETED_TIME, "
        "ROOT_TASK_ID, GRAPH_VERSION, RUN_ID, RETURN_VALUE, SCHEDULED_FROM, ATTEMPT_NUMBER, "
        f"GRAPH_RUN_GROUP_ID FROM {history}"
    )
    return (
        f"SELECT QUERY_ID, NAME, '{db}' AS DATABASE_NAME, SCHEMA_NAME, QUERY_TEXT, CONDITION_TEXT, "
        "STATE, ERROR_CODE, ERROR_MESSAGE, SCHEDULED_TIME, QUERY_START_TIME, NEXT_SCHEDULED_TIME, "
        "COMPLETED_TIME, ROOT_TASK_ID, GRAPH_VERSION, RUN_ID, RETURN_VALUE, SCHEDULED_FROM, "
        "ATTEMPT_NUMBER, NULL::JSON AS CONFIG, NULL AS QUERY_HASH, NULL AS QUERY_HASH_VERSION, "
        "NULL AS QUERY_PARAMETERIZED_HASH, NULL AS QUERY_PARAMETERIZED_HASH_VERSION, "
        "GRAPH_RUN_GROUP_ID, NULL::JSON AS BACKFILL_INFO, NULL AS SPCS_JOB_ID "
        f"FROM ({runs} UNION ALL {upcoming}) AS _runs WHERE {' AND '.join(where)} "
        f"ORDER BY SCHEDULED_TIME DESC LIMIT {_limit(args)}"
    )


def _name_filter(args: dict[str, str], db: str) -> list[str]:
    where = []
    if "NAME" in args:
        # NAME is the (qualified) name; accept a bare one too (tolerant).
        where.append(
            f"(upper({args['NAME']}) IN "
            f"(NAME, SCHEMA_NAME || '.' || NAME, '{db}.' || SCHEMA_NAME || '.' || NAME))"
        )
    if "NAME_PREFIX" in args:
        where.append(
            f"('{db}.' || SCHEMA_NAME || '.' || NAME) LIKE upper({args['NAME_PREFIX']}) || '%'"
        )
    return where


def _refresh_history(db: str, args: dict[str, str]) -> str:
    day = f"now() - INTERVAL {86400} SECOND"
    where = [f"DATA_TIMESTAMP >= {args.get('DATA_TIMESTAMP_START', day)}", *_name_filter(args, db)]
    if "DATA_TIMESTAMP_END" in args:
        where.append(f"DATA_TIMESTAMP < {args['DATA_TIMESTAMP_END']}")
    if args.get("ERROR_ONLY", "").upper() == "TRUE":
        where.append("STATE IN ('FAILED', 'UPSTREAM_FAILED')")
    return (
        f"SELECT NAME, SCHEMA_NAME, '{db}' AS DATABASE_NAME, STATE, STATE_CODE, STATE_MESSAGE, "
        "QUERY_ID, DATA_TIMESTAMP, REFRESH_START_TIME, REFRESH_END_TIME, COMPLETION_TARGET, "
        f"'{db}.' || SCHEMA_NAME || '.' || NAME AS QUALIFIED_NAME, NULL::JSON AS "
        "LAST_COMPLETED_DEPENDENCY, json_object('numInsertedRows', NUM_INSERTED, "
        "'numDeletedRows', NUM_DELETED) AS STATISTICS, REFRESH_ACTION, REFRESH_TRIGGER, "
        "TARGET_LAG_SEC, NULL::TIMESTAMPTZ AS GRAPH_HISTORY_VALID_FROM, "
        "NULL::JSON AS INPUTS_WITH_CHANGED_DATA "
        f"FROM {hidden(db, 'DT_REFRESH_HISTORY')} WHERE {' AND '.join(where)} "
        f"ORDER BY REFRESH_START_TIME DESC LIMIT {_limit(args)}"
    )


def _dynamic_tables(db: str, args: dict[str, str]) -> str:
    where = ["true", *_name_filter(args, db)]
    last = (
        f"(SELECT h.{{col}} FROM {hidden(db, 'DT_REFRESH_HISTORY')} h WHERE h.NAME = d.NAME "
        "AND h.SCHEMA_NAME = d.SCHEMA_NAME ORDER BY h.REFRESH_END_TIME DESC LIMIT 1)"
    )
    lag = "date_diff('millisecond', d.DATA_TIMESTAMP, now()) / 1000.0"
    return (
        "SELECT * FROM ("
        f"SELECT d.NAME, d.SCHEMA_NAME, '{db}' AS DATABASE_NAME, "
        f"'{db}.' || d.SCHEMA_NAME || '.' || d.NAME AS QUALIFIED_NAME, d.TARGET_LAG_SEC, "
        "CASE WHEN d.TARGET_LAG_SEC IS NULL THEN 'DOWNSTREAM' ELSE 'USER_DEFINED' END "
        "AS TARGET_LAG_TYPE, json_object('state', d.STATE, 'suspended_on', d.SUSPENDED_ON, "
        "'resumed_on', d.RESUMED_ON) AS SCHEDULING_STATE, "
        # Lag statistics are the current lag (the stand-in keeps no lag time series).
        f"{lag} AS MEAN_LAG_SEC, {lag} AS MAXIMUM_LAG_SEC, NULL::DOUBLE AS "
        "TIME_ABOVE_TARGET_LAG_SEC, NULL::DOUBLE AS TIME_WITHIN_TARGET_LAG_RATIO, "
        "d.DATA_TIMESTAMP AS LATEST_DATA_TIMESTAMP, "
        f"{last.format(col='STATE')} AS LAST_COMPLETED_REFRESH_STATE, "
        f"{last.format(col='STATE_CODE')} AS LAST_COMPLETED_REFRESH_STATE_CODE, "
        f"{last.format(col='STATE_MESSAGE')} AS LAST_COMPLETED_REFRESH_STATE_MESSAGE, "
        "NULL AS EXECUTING_REFRESH_QUERY_ID, NULL::JSON AS RECOMMENDATIONS "
        f"FROM {hidden(db, 'DYNAMIC_TABLES')} d WHERE {' AND '.join(where)}) AS _dts "
        # Failed ones first, as Snowflake orders this function's output (§5.6).
        "ORDER BY (LAST_COMPLETED_REFRESH_STATE = 'FAILED') DESC NULLS LAST, NAME "
        f"LIMIT {_limit(args)}"
    )
