"""A minimal SQL API v2 (`/api/v2/statements`, reference §4): one synchronous statement per request.

Statements are translated from Snowflake SQL to DuckDB with sqlglot. Queries run on a read cursor,
everything else on the single writer. What the stand-in cannot run (multi-statement, async,
streams, tasks, pipes) is refused with a Snowflake-style 422, never skipped.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import duckdb
import orjson
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd.standin.auth import Authenticator, AuthError
from streamd.standin.ddl import CreateDatabase, DdlError, translate
from streamd.standin.routes_streaming import json_response
from streamd.standin.sqlvalues import column_type, format_value
from streamd.standin.state import StandinState
from streamd.standin.storage import Cursor, quote

MAX_STORED_RESULTS = 256
"""Finished results kept for GET by handle; older ones are evicted (bounded memory)."""

_READ_ONLY = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Show, exp.Describe)
_DML_LABELS = {
    exp.Insert: ("number of rows inserted", "numRowsInserted"),
    exp.Update: ("number of rows updated", "numRowsUpdated"),
    exp.Delete: ("number of rows deleted", "numRowsDeleted"),
    exp.Merge: ("number of rows affected", "numRowsUpdated"),
}


class SqlFailure(Exception):
    """A statement that failed: rendered as a 422 QueryFailureStatus (§4.2)."""

    def __init__(self, code: str, sql_state: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.sql_state = sql_state
        self.message = message


@dataclass
class SqlApi:
    """Handlers for submit and poll, with a bounded store of finished results."""

    state: StandinState
    auth: Authenticator
    results: OrderedDict[str, tuple[int, dict[str, Any]]] = field(default_factory=OrderedDict)

    def routes(self) -> list[Route]:
        """Starlette routes of the SQL API."""
        return [
            Route("/api/v2/statements", self.submit, methods=["POST"]),
            Route("/api/v2/statements/{handle}", self.poll, methods=["GET"]),
        ]

    async def submit(self, request: Request) -> Response:
        """POST /api/v2/statements: run one statement and answer 200 ResultSet or 422."""
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except AuthError as err:
            return json_response({"code": "390303", "message": f"Invalid JWT token: {err}"}, 401)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("statement"), str):
            return json_response(
                {"code": "390142", "message": "Incoming request does not contain a valid payload."},
                400,
            )
        handle = str(uuid.uuid4())
        created = int(time.time() * 1000)
        try:
            result = await self._run(body, request.query_params.get("async", ""))
            status, payload = 200, _result_set(handle, created, *result)
        except SqlFailure as err:
            status, payload = 422, _failure(handle, created, err)
        self._remember(handle, status, payload)
        return json_response(payload, status)

    async def poll(self, request: Request) -> Response:
        """GET /api/v2/statements/{handle}: the stored outcome of a finished statement (§4.3)."""
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except AuthError as err:
            return json_response({"code": "390303", "message": f"Invalid JWT token: {err}"}, 401)
        handle = request.path_params["handle"]
        stored = self.results.get(handle)
        if stored is None:
            missing = SqlFailure("000709", "02000", f"Statement {handle} not found")
            return json_response(_failure(handle, int(time.time() * 1000), missing), 422)
        return json_response(stored[1], stored[0])

    def _remember(self, handle: str, status: int, payload: dict[str, Any]) -> None:
        self.results[handle] = (status, payload)
        while len(self.results) > MAX_STORED_RESULTS:
            self.results.popitem(last=False)

    async def _run(
        self, body: dict[str, Any], async_flag: str
    ) -> tuple[list[dict[str, Any]], list[list[str | None]], dict[str, int] | None]:
        if async_flag.lower() == "true":
            raise SqlFailure("000002", "0A000", "async=true is not supported by the stand-in yet")
        stmt = _parse_one(body["statement"])
        params = _bindings(body.get("bindings"))
        use = _use_clause(body.get("database"), body.get("schema"))
        storage = self.state.storage
        if isinstance(stmt, exp.Command):
            raise SqlFailure(
                "000002",
                "0A000",
                f"Unsupported feature in the stand-in: {stmt.sql('snowflake')[:80]}",
            )
        if isinstance(stmt, exp.Create) and (stmt.kind or "").upper() in (
            "DATABASE",
            "SCHEMA",
            "TABLE",
        ):
            try:
                action = translate(stmt)
            except DdlError as err:
                raise SqlFailure("000002", "0A000", str(err)) from err
            if isinstance(action, CreateDatabase):
                await storage.write(functools.partial(storage.attach_sync, name=action.name))
                return _status_only(f"Database {action.name.upper()} successfully created.")
            await storage.write(functools.partial(_execute, sql=action.sql, params=[], use=use))
            if action.table is not None:
                self.state.add_tables([action.table])
            return _status_only("Statement executed successfully.")
        sql = _to_duckdb(stmt)
        if isinstance(stmt, _READ_ONLY):
            columns, rows = await storage.read(
                functools.partial(_execute, sql=sql, params=params, use=use)
            )
            return (*_result_rows(columns, rows), None)
        columns, rows = await storage.write(
            functools.partial(_execute, sql=sql, params=params, use=use)
        )
        if isinstance(stmt, exp.Drop | exp.Alter):
            self.state.forget_tables()
        label = next((v for k, v in _DML_LABELS.items() if isinstance(stmt, k)), None)
        if label is not None and rows and len(rows[0]) == 1:
            count = int(rows[0][0] or 0)
            meta = [
                {"name": label[0], "type": "fixed", "nullable": False, "precision": 19, "scale": 0}
            ]
            return meta, [[str(count)]], {label[1]: count}
        return (*_result_rows(columns, rows), None)


def _parse_one(text: str) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(text, read="snowflake") if s is not None]
    except SqlglotError as err:
        raise SqlFailure("001003", "42000", f"SQL compilation error: {err}") from err
    if len(statements) != 1:
        # Multi-statement requests come later (issue 7); wording as Snowflake's (§4.7).
        raise SqlFailure(
            "000008",
            "0A000",
            f"Actual statement count {len(statements)} did not match the desired "
            "statement count 1.",
        )
    return statements[0]


def _to_duckdb(stmt: exp.Expr) -> str:
    def unquote_text_casts(node: exp.Expression) -> exp.Expression:
        # `col:path::STRING` must yield the unquoted text (sqlglot keeps JSON quotes,
        # local-target-notes §5.2): a text cast of a JSON extract becomes `->>`.
        if (
            isinstance(node, exp.Cast)
            and isinstance(node.this, exp.JSONExtract)
            and node.to.is_type(*exp.DataType.TEXT_TYPES)
        ):
            inner = node.this
            return exp.JSONExtractScalar(this=inner.this, expression=inner.expression)
        return node

    return stmt.transform(unquote_text_casts).sql(dialect="duckdb")


def _use_clause(database: object, schema: object) -> str | None:
    if isinstance(database, str) and database:
        target = quote(database.upper())
        if isinstance(schema, str) and schema:
            target += "." + quote(schema.upper())
        return f"USE {target}"
    return None


def _bindings(raw: object) -> list[object]:
    if not raw:
        return []
    if not isinstance(raw, dict):
        raise SqlFailure("390142", "22018", "bindings must be an object")
    values: list[object] = []
    for key in sorted(raw, key=lambda k: int(k) if str(k).isdigit() else 0):
        item = raw[key]
        kind = str(item.get("type", "TEXT")).upper()
        value = item.get("value")
        try:
            if value is None:
                values.append(None)
            elif kind == "FIXED":
                values.append(Decimal(value) if "." in value else int(value))
            elif kind == "REAL":
                values.append(float(value))
            elif kind == "BOOLEAN":
                values.append(value.lower() in ("true", "1"))
            else:
                values.append(value)
        except (ValueError, ArithmeticError, AttributeError) as err:
            raise SqlFailure("100037", "22018", f"Unrecognized binding value {value!r}") from err
    return values


def _execute(
    cur: Cursor, sql: str, params: list[object], use: str | None
) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    try:
        if use is not None:
            cur.execute(use).fetchall()
        result = cur.execute(sql, params) if params else cur.execute(sql)
        description = result.description or []
        rows = result.fetchall() if description else []
    except duckdb.Error as err:
        raise _failure_of(err) from err
    return [(d[0], str(d[1])) for d in description], rows


def _failure_of(err: duckdb.Error) -> SqlFailure:
    text = str(err).splitlines()[0]
    if isinstance(err, duckdb.ParserException):
        return SqlFailure("001003", "42000", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.CatalogException):
        return SqlFailure("002003", "42S02", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.BinderException):
        return SqlFailure("000904", "42000", f"SQL compilation error: {text}")
    if isinstance(err, duckdb.ConstraintException):
        return SqlFailure("100072", "22000", text)
    return SqlFailure("100000", "22000", text)


def _result_rows(
    columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]
) -> tuple[list[dict[str, Any]], list[list[str | None]]]:
    meta = [
        {"name": name, **column_type(type_name), "nullable": True} for name, type_name in columns
    ]
    kinds = [m["type"] for m in meta]
    data = [[format_value(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows]
    return meta, data


def _status_only(message: str) -> tuple[list[dict[str, Any]], list[list[str | None]], None]:
    return [{"name": "status", "type": "text", "nullable": True}], [[message]], None


def _result_set(
    handle: str,
    created: int,
    row_type: list[dict[str, Any]],
    data: list[list[str | None]],
    stats: dict[str, int] | None,
) -> dict[str, Any]:
    size = len(orjson.dumps(data))
    body: dict[str, Any] = {
        "code": "090001",
        "sqlState": "00000",
        "message": "Statement executed successfully.",
        "statementHandle": handle,
        "createdOn": created,
        "statementStatusUrl": f"/api/v2/statements/{handle}",
        "resultSetMetaData": {
            "numRows": len(data),
            "format": "jsonv2",
            "rowType": row_type,
            "partitionInfo": [{"rowCount": len(data), "uncompressedSize": size}],
        },
        "data": data,
    }
    if stats is not None:
        body["stats"] = stats
    return body


def _failure(handle: str, created: int, err: SqlFailure) -> dict[str, Any]:
    return {
        "code": err.code,
        "sqlState": err.sql_state,
        "message": err.message,
        "statementHandle": handle,
        "createdOn": created,
        "statementStatusUrl": f"/api/v2/statements/{handle}",
    }
