"""SQL API v2 (`/api/v2/statements`, reference §4): synchronous single and multi-statement requests.

The HTTP side only: statements are split, dispatched and executed by `SqlEngine`
(`sql/engine.py`). A lone query runs on a read cursor, everything else on the single writer.
What the stand-in cannot run is refused with a Snowflake-style 422, never skipped.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from streamd import sqlsplit
from streamd.standin.http.auth import Authenticator, Unauthorized
from streamd.standin.http.responses import json_response
from streamd.standin.sql.engine import (
    Result,
    SqlEngine,
    SqlFailure,
    parse_request,
)
from streamd.standin.sql.values import column_type, format_value
from streamd.standin.streaming.channels import StandinState

__all__ = ["SqlApi", "SqlFailure"]

MAX_STORED_RESULTS = 256
"""Finished results kept for GET by handle; older ones are evicted (bounded memory)."""

MULTI_OK = "Multiple statements executed successfully."


@dataclass
class SqlApi:
    """Handlers for submit and poll, with a bounded store of finished results."""

    state: StandinState
    auth: Authenticator
    engine: SqlEngine
    results: OrderedDict[str, tuple[int, dict[str, Any]]] = field(default_factory=OrderedDict)

    def routes(self) -> list[Route]:
        """Starlette routes of the SQL API."""
        return [
            Route("/api/v2/statements", self.submit, methods=["POST"]),
            Route("/api/v2/statements/{handle}", self.poll, methods=["GET"]),
        ]

    async def submit(self, request: Request) -> Response:
        """POST /api/v2/statements: run the statement(s) and answer 200 ResultSet or 422."""
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except Unauthorized as err:
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
            results = await self._run(body, request.query_params.get("async", ""))
            if len(results) == 1 and not _multi(body):
                status, payload = 200, _result_set(handle, created, results[0])
            else:
                status, payload = 200, self._multi_result(handle, created, results)
        except SqlFailure as err:
            if _multi(body) and err.statement_index is not None:
                err = _in_script(err, body["statement"])
            status, payload = 422, _failure(handle, created, err)
        self._remember(handle, status, payload)
        return json_response(payload, status)

    async def poll(self, request: Request) -> Response:
        """GET /api/v2/statements/{handle}: the stored outcome of a finished statement (§4.3)."""
        try:
            self.auth.check_control(request.headers.get("authorization"))
        except Unauthorized as err:
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

    def _multi_result(self, handle: str, created: int, results: list[Result]) -> dict[str, Any]:
        # Each statement's result is fetched by its own handle (§4.5, §4.7).
        handles = []
        for result in results:
            child = str(uuid.uuid4())
            self._remember(child, 200, _result_set(child, created, result))
            handles.append(child)
        payload = _result_set(handle, created, Result.status(MULTI_OK))
        payload["statementHandles"] = handles
        payload["resultSetMetaData"]["rowType"][0]["name"] = "multiple statement execution"
        return payload

    async def _run(self, body: dict[str, Any], async_flag: str) -> list[Result]:
        if async_flag.lower() == "true":
            raise SqlFailure("000002", "0A000", "async=true is not supported by the stand-in yet")
        statements = parse_request(body["statement"])
        _check_count(len(statements), _statement_count(body))
        params = _bindings(body.get("bindings"))
        if params and len(statements) > 1:
            raise SqlFailure(
                "000002", "0A000", "Bind variables are not supported in multi-statement requests"
            )
        database, schema = _name(body.get("database")), _name(body.get("schema"))
        storage = self.state.storage
        run = functools.partial(
            self.engine.run,
            statements=statements,
            database=database,
            schema=schema,
            params=params,
        )
        if len(statements) == 1 and self.engine.is_plain_read(statements[0]):
            results, effects = await storage.read(run)
        else:
            results, effects = await storage.write(run)
        for effect in effects:
            effect()
        return results


def _multi(body: dict[str, Any]) -> bool:
    return _statement_count(body) != 1


def _statement_count(body: dict[str, Any]) -> int:
    params = body.get("parameters")
    if not isinstance(params, dict):
        return 1
    for key, value in params.items():
        if str(key).upper() == "MULTI_STATEMENT_COUNT":
            try:
                return int(str(value))
            except ValueError as err:
                raise SqlFailure(
                    "390142", "22023", f"MULTI_STATEMENT_COUNT must be a number, got {value!r}"
                ) from err
    return 1


def _in_script(err: SqlFailure, text: str) -> SqlFailure:
    """A multi-statement failure as Snowflake reports it: 100132/P0000 naming the statement (§4.7).

    The wording after "STATEMENT_ERROR" follows what Snowflake prints; only code and sqlState are
    documented (tolerant choice).
    """
    index = err.statement_index or 0
    try:
        statements = sqlsplit.split_statements(text)
    except sqlsplit.SplitError:
        statements = []
    line = statements[index].line if index < len(statements) else 1
    return SqlFailure(
        "100132",
        "P0000",
        f"Uncaught exception of type 'STATEMENT_ERROR' on line {line} at position 0 : "
        f"{err.message} (statement {index + 1}, code {err.code}, sqlState {err.sql_state})",
    )


def _check_count(actual: int, desired: int) -> None:
    if actual == 0:
        raise SqlFailure("000900", "42601", "SQL compilation error:\nEmpty SQL statement.")
    if desired != 0 and actual != desired:
        # Wording as Snowflake's (§4.7).
        raise SqlFailure(
            "000008",
            "0A000",
            f"Actual statement count {actual} did not match the desired statement count {desired}.",
        )


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


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


def _result_rows(
    columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]
) -> tuple[list[dict[str, Any]], list[list[str | None]]]:
    meta = [
        {"name": name, **column_type(type_name), "nullable": True} for name, type_name in columns
    ]
    kinds = [m["type"] for m in meta]
    data = [[format_value(v, k) for v, k in zip(row, kinds, strict=True)] for row in rows]
    return meta, data


def _result_set(handle: str, created: int, result: Result) -> dict[str, Any]:
    row_type, data = _result_rows(result.columns, result.rows)
    stats = result.stats
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
