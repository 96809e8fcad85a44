"""SQL API v2 client: submit a statement, poll it to the end, fetch every partition (§4).

Used by setup and the reconciler. One `execute` is one statement's life; retrying a failed one is
the caller's decision (`RetryableError` says when that is safe).
"""

from __future__ import annotations

import contextlib
import gzip
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from streamd.clock import Clock
from streamd.errors import RetryableError, SqlError
from streamd.snowflake.auth import KeyPairAuth
from streamd.snowflake.codes import error_for, map_transport_errors, parse_retry_after

STATEMENTS_PATH = "/api/v2/statements"
POLL_INITIAL_S = 0.5
POLL_MAX_S = 5.0
"""Poll a running statement every 0.5 s, doubling up to 5 s (§4.9 [REC])."""
CLIENT_GRACE_S = 60.0
"""How long past its own `timeout` a statement may run before the client gives up and cancels it."""

_RESULT_INCOMPLETE = "391908"  # 200 with a truncated result set (§4.5)
_NUMERIC = re.compile(r"^-?\d+(\.\d+)?$")
_EPOCH = datetime(1970, 1, 1)
_EPOCH_DATE = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class ResultSet:
    """A finished statement's rows; every value is the string Snowflake sent, or None (§4.5)."""

    columns: list[str]
    types: list[str]
    rows: list[list[str | None]]
    statement_handle: str
    stats: dict[str, int] = field(default_factory=dict)
    statement_handles: list[str] = field(default_factory=list)
    """Per-statement handles of a multi-statement request (§4.7); empty otherwise."""

    def records(self) -> list[dict[str, Any]]:
        """Rows as dicts keyed by column name, values parsed with `parse_value`."""
        return [
            {
                col: parse_value(v, t)
                for col, t, v in zip(self.columns, self.types, row, strict=False)
            }
            for row in self.rows
        ]


class SqlApiClient:
    """Runs statements over `POST /api/v2/statements` with a key-pair JWT."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        key_auth: KeyPairAuth,
        base_url: str,
        clock: Clock,
        *,
        user_agent: str = "streamd/0.1",
    ) -> None:
        self._http = http
        self._key_auth = key_auth
        self._base = httpx.URL(base_url.rstrip("/"))
        self._clock = clock
        self._user_agent = user_agent

    async def execute(
        self,
        statement: str,
        *,
        database: str | None = None,
        schema: str | None = None,
        warehouse: str | None = None,
        role: str | None = None,
        timeout_s: int = 60,
        multi_statement_count: int | None = None,
    ) -> ResultSet:
        """Run one statement (or `multi_statement_count` of them, 0 = any) and return its result.

        Raises `SqlError` (422: Snowflake's code and sqlState), `RetryableError` (408 timeout,
        429, 5xx, transport), `AuthError`, or another `FatalError` from the status table.
        """
        what = f"SQL `{_preview(statement)}`"
        body: dict[str, Any] = {"statement": statement, "timeout": timeout_s}
        # Names are case-sensitive here and must match SHOW output (§4.2); sent as given.
        names = {"database": database, "schema": schema, "warehouse": warehouse, "role": role}
        body.update({key: value for key, value in names.items() if value is not None})
        if multi_statement_count is not None:
            body["parameters"] = {"MULTI_STATEMENT_COUNT": str(multi_statement_count)}
        response = await self._call(
            "POST", self._url(STATEMENTS_PATH), what=what, content=orjson.dumps(body)
        )
        if response.status_code == 202:
            response = await self._poll(response, what=what, timeout_s=timeout_s)
        return await self._finish(response, what=what)

    async def cancel(self, handle: str) -> None:
        """Cancel a running statement; `SqlError` if Snowflake does not know the handle (§4.4)."""
        what = f"cancel SQL statement {handle}"
        response = await self._call(
            "POST", self._url(f"{STATEMENTS_PATH}/{quote(handle, safe='')}/cancel"), what=what
        )
        if response.status_code == 200:
            return
        raise self._failure(response, what=what)

    async def _poll(self, response: httpx.Response, *, what: str, timeout_s: int) -> httpx.Response:
        # Without async=true the server waits up to 45 s, then answers 202 with a handle (§4.2).
        status = _json(response)
        handle = str(status.get("statementHandle") or "")
        status_url = (
            status.get("statementStatusUrl") or f"{STATEMENTS_PATH}/{quote(handle, safe='')}"
        )
        url = self._url(str(status_url))
        deadline = None
        if timeout_s > 0:
            deadline = self._clock.monotonic() + timeout_s + CLIENT_GRACE_S
        delay = POLL_INITIAL_S
        while response.status_code in (202, 429):
            if deadline is not None and self._clock.monotonic() >= deadline:
                await self._cancel_quietly(handle)
                raise RetryableError(
                    f"{what} still running {timeout_s + CLIENT_GRACE_S:.0f} s after submit; "
                    "cancelled it"
                )
            wait = delay
            if response.status_code == 429:
                # A poll may be answered 429 while the statement runs (§4.3); honour Retry-After.
                hinted = parse_retry_after(
                    response.headers.get("retry-after"), now=self._clock.wall()
                )
                wait = max(delay, hinted or 0.0)
            await self._clock.sleep(wait)
            delay = min(delay * 2, POLL_MAX_S)
            response = await self._call("GET", url, what=what)
        return response

    async def _finish(self, response: httpx.Response, *, what: str) -> ResultSet:
        if response.status_code != 200:
            raise self._failure(response, what=what)
        data = _json(response)
        handle = str(data.get("statementHandle") or "")
        if data.get("code") == _RESULT_INCOMPLETE:
            raise SqlError(
                f"{what}: the result set is too large and came back incomplete — add a LIMIT",
                status=200,
                code=_RESULT_INCOMPLETE,
                sql_state=data.get("sqlState"),
            )
        meta = data.get("resultSetMetaData") or {}
        row_type = meta.get("rowType") or []
        rows: list[list[str | None]] = list(data.get("data") or [])
        partitions = meta.get("partitionInfo") or []
        for index in range(1, len(partitions)):
            rows.extend(await self._partition(handle, index, what=what))
        stats = data.get("stats") or {}
        return ResultSet(
            columns=[str(col.get("name", "")) for col in row_type],
            types=[str(col.get("type", "")).lower() for col in row_type],
            rows=rows,
            statement_handle=handle,
            stats={str(k): int(v) for k, v in stats.items() if _is_int(v)},
            statement_handles=[str(h) for h in data.get("statementHandles") or []],
        )

    async def _partition(self, handle: str, index: int, *, what: str) -> list[list[str | None]]:
        # Partitions after the first carry only `data`, gzip-compressed (§4.3).
        url = self._url(f"{STATEMENTS_PATH}/{quote(handle, safe='')}").copy_merge_params(
            {"partition": index}
        )
        response = await self._call("GET", url, what=f"{what} (partition {index})")
        if response.status_code != 200:
            raise self._failure(response, what=f"{what} (partition {index})")
        return list(_json(response).get("data") or [])

    async def _cancel_quietly(self, handle: str) -> None:
        if not handle:
            return
        # Best effort: the statement is abandoned either way, and its own timeout will end it.
        with contextlib.suppress(SqlError, RetryableError):
            await self.cancel(handle)

    def _failure(self, response: httpx.Response, *, what: str) -> Exception:
        status = response.status_code
        if status == 422:
            data = _json_or_empty(response)
            code = data.get("code")
            sql_state = data.get("sqlState")
            message = " ".join(str(data.get("message") or "").split())
            return SqlError(
                f"{what} failed: {code} ({sql_state}): {message}",
                status=422,
                code=code,
                sql_state=sql_state,
            )
        if status == 408:
            # The statement exceeded its `timeout` and the server cancelled it (§4.2).
            return RetryableError(f"{what} timed out on the server and was cancelled", status=408)
        return error_for(
            status, response.content, response.headers, what=what, now=self._clock.wall()
        )

    async def _call(
        self, method: str, url: httpx.URL, *, what: str, content: bytes | None = None
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._key_auth.jwt()}",
            "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
            "Accept": "application/json",
            "User-Agent": self._user_agent,
        }
        if content is not None:
            headers["Content-Type"] = "application/json"
        url = url.copy_merge_params({"requestId": str(uuid.uuid4())})
        # Submitting is not idempotent in general, but nothing here resends: the caller decides.
        with map_transport_errors(ambiguous=False, what=what):
            return await self._http.request(method, url, content=content, headers=headers)

    def _url(self, path_or_url: str) -> httpx.URL:
        return self._base.join(path_or_url)

    def __repr__(self) -> str:
        return f"SqlApiClient(base_url={str(self._base)!r}, auth={self._key_auth!r})"


def parse_value(value: str | None, type_: str) -> Any:
    """A SQL API string turned into a Python value by its `rowType` type (§4.5).

    Timestamps arrive either as seconds with 9 decimals or as integer nanoseconds (the reference
    says both; §6 item 16): an integer of 10^14 or more is read as nanoseconds. Unknown types and
    values that do not parse come back as the original string.
    """
    if value is None:
        return None
    kind = type_.lower()
    try:
        if kind == "fixed":
            return int(value) if _NUMERIC.match(value) and "." not in value else Decimal(value)
        if kind in ("real", "float", "double"):
            return float(value)
        if kind == "decfloat":
            return Decimal(value)
        if kind == "boolean":
            return value.strip().lower() in ("true", "1", "t", "yes")
        if kind == "date":
            if _NUMERIC.match(value):
                return _EPOCH_DATE + timedelta(days=int(value))
            return date.fromisoformat(value)
        if kind == "time":
            return _parse_time(value)
        if kind in ("timestamp_ntz", "timestamp_ltz", "timestamp_tz"):
            return _parse_timestamp(value, kind)
        if kind == "binary":
            return bytes.fromhex(value)
        if kind in ("variant", "object", "array", "map"):
            return orjson.loads(value)
    except (ValueError, InvalidOperation, orjson.JSONDecodeError):
        return value
    return value


def _parse_time(value: str) -> time:
    if not _NUMERIC.match(value):
        return time.fromisoformat(value)
    seconds = Decimal(value)
    if "." not in value and seconds > 86_400:
        seconds /= 1_000_000_000
    return (_EPOCH + _delta(seconds)).time()


def _parse_timestamp(value: str, kind: str) -> datetime:
    text, _, offset = value.strip().partition(" ")
    if not _NUMERIC.match(text):
        parsed = datetime.fromisoformat(text)
        return parsed
    seconds = Decimal(text)
    if "." not in text and abs(seconds) >= 10**14:
        seconds /= 1_000_000_000
    naive = _EPOCH + _delta(seconds)
    if kind == "timestamp_ntz":
        return naive
    if kind == "timestamp_tz" and offset:
        # TIMESTAMP_TZ: "<epoch> <offset>" where offset minutes = value - 1440 (§4.5).
        zone = timezone(timedelta(minutes=int(offset) - 1440))
        return naive.replace(tzinfo=UTC).astimezone(zone)
    return naive.replace(tzinfo=UTC)


def _delta(seconds: Decimal) -> timedelta:
    whole = seconds.to_integral_value(rounding=ROUND_FLOOR)
    micros = ((seconds - whole) * 1_000_000).to_integral_value(rounding=ROUND_FLOOR)
    return timedelta(seconds=int(whole), microseconds=int(micros))


def _json(response: httpx.Response) -> dict[str, Any]:
    content = response.content
    if content[:2] == b"\x1f\x8b":
        # gzip without a Content-Encoding header (httpx decodes it when the header is there).
        content = gzip.decompress(content)
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        raise RetryableError(
            f"SQL API answered HTTP {response.status_code} with a body that is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise RetryableError(f"SQL API answered HTTP {response.status_code} with a non-object body")
    return data


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        return _json(response)
    except RetryableError:
        return {"message": response.text}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _preview(statement: str, limit: int = 60) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
