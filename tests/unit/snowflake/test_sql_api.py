"""SqlApiClient against httpx.MockTransport, and value parsing (snowflake-apis.md §4)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import anyio
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from streamd.errors import AuthError, RetryableError, SqlError
from streamd.snowflake.auth import KeyPairAuth
from streamd.snowflake.sql_api import ResultSet, SqlApiClient, parse_value
from streamd.testing import ManualClock

BASE = "https://myorg-acct.snowflakecomputing.com"
HANDLE = "01b2c3d4-0000-1111-2222-333344445555"
ROW_TYPE = [
    {"name": "ID", "type": "FIXED", "scale": 0},
    {"name": "NAME", "type": "text"},
    {"name": "TS", "type": "timestamp_ntz"},
]


class AutoClock(ManualClock):
    """A ManualClock whose sleeps advance time at once and are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()


def _result(data: list[list[str | None]], partitions: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "code": "090001",
        "sqlState": "00000",
        "statementHandle": HANDLE,
        "statementStatusUrl": f"/api/v2/statements/{HANDLE}",
        "resultSetMetaData": {
            "numRows": 0,
            "format": "jsonv2",
            "rowType": ROW_TYPE,
            "partitionInfo": [{"rowCount": 1}] * partitions,
        },
        "data": data,
        **extra,
    }


_RUNNING = {
    "code": "333334",
    "message": "Asynchronous execution in progress.",
    "statementHandle": HANDLE,
    "statementStatusUrl": f"/api/v2/statements/{HANDLE}",
}


class Server:
    """Scripts answers per (method, path) and records requests."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[Callable[[httpx.Request], httpx.Response]] = []
        self.cancelled: list[httpx.Request] | None = None
        """When a list, cancel calls are answered 200 and recorded here instead of scripted."""

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.cancelled is not None and request.url.path.endswith("/cancel"):
            self.cancelled.append(request)
            return httpx.Response(200, json={"code": "000604"})
        self.requests.append(request)
        return self.answers.pop(0)(request)

    def then(self, status: int, body: Any = None, **kwargs: Any) -> Server:
        def answer(_req: httpx.Request) -> httpx.Response:
            if body is None:
                return httpx.Response(status, **kwargs)
            return httpx.Response(status, json=body, **kwargs)

        self.answers.append(answer)
        return self


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def auto_clock() -> AutoClock:
    return AutoClock()


@pytest.fixture
def client(server: Server, rsa_key: RSAPrivateKey, auto_clock: AutoClock) -> SqlApiClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(server.handler))
    auth = KeyPairAuth(rsa_key, "myorg-acct", "svc", auto_clock)
    return SqlApiClient(http, auth, BASE, auto_clock, user_agent="streamd/test")


async def test_execute_200_returns_result_and_sends_documented_request(
    server: Server, client: SqlApiClient
) -> None:
    """A finished statement comes back as columns, types, rows, handle and stats."""
    server.then(200, _result([["1", "a", None]], stats={"numRowsInserted": 1}))
    result = await client.execute(
        "SELECT 1", database="DB", schema="SC", warehouse="WH", role="R", timeout_s=30
    )
    assert result == ResultSet(
        columns=["ID", "NAME", "TS"],
        types=["fixed", "text", "timestamp_ntz"],
        rows=[["1", "a", None]],
        statement_handle=HANDLE,
        stats={"numRowsInserted": 1},
    )
    (req,) = server.requests
    assert req.method == "POST"
    assert req.url.path == "/api/v2/statements"
    assert "requestId" in req.url.params
    assert orjson.loads(req.content) == {
        "statement": "SELECT 1",
        "timeout": 30,
        "database": "DB",
        "schema": "SC",
        "warehouse": "WH",
        "role": "R",
    }
    assert req.headers["Authorization"].startswith("Bearer eyJ")
    assert req.headers["X-Snowflake-Authorization-Token-Type"] == "KEYPAIR_JWT"
    assert req.headers["User-Agent"] == "streamd/test"
    assert req.headers["Accept"] == "application/json"
    assert req.headers["Content-Type"] == "application/json"


async def test_multi_statement_count_is_sent_as_parameter(
    server: Server, client: SqlApiClient
) -> None:
    """Multi-statement requests carry MULTI_STATEMENT_COUNT as a string (§4.7)."""
    server.then(200, _result([["Multiple statements executed successfully."]],
                             statementHandles=["h1", "h2"]))  # fmt: skip
    result = await client.execute("BEGIN; SELECT 1; COMMIT;", multi_statement_count=0)
    assert orjson.loads(server.requests[0].content)["parameters"] == {"MULTI_STATEMENT_COUNT": "0"}
    assert result.statement_handles == ["h1", "h2"]


async def test_202_is_polled_with_backoff_until_done(
    server: Server, client: SqlApiClient, auto_clock: AutoClock
) -> None:
    """A running statement is polled at its status URL, 0.5 s doubling to 5 s, on the clock."""
    server.then(202, _RUNNING)
    for _ in range(5):
        server.then(202, _RUNNING)
    server.then(429, _RUNNING)
    server.then(200, _result([["1", "a", None]]))
    result = await client.execute("CALL slow()")
    assert result.rows == [["1", "a", None]]
    assert auto_clock.slept == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    polls = server.requests[1:]
    assert all(r.method == "GET" for r in polls)
    assert all(r.url.path == f"/api/v2/statements/{HANDLE}" for r in polls)


async def test_polling_waits_on_the_manual_clock(rsa_key: RSAPrivateKey) -> None:
    """Nothing is polled until the clock moves past the backoff."""
    clock = ManualClock()
    answers = [httpx.Response(202, json=_RUNNING), httpx.Response(200, json=_result([]))]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    sql = SqlApiClient(http, KeyPairAuth(rsa_key, "a", "u", clock), BASE, clock)
    results: list[ResultSet] = []

    async def run() -> None:
        results.append(await sql.execute("SELECT 1"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        while clock.sleepers == 0:
            await anyio.lowlevel.checkpoint()
        assert len(seen) == 1
        clock.advance(0.49)
        for _ in range(5):
            await anyio.lowlevel.checkpoint()
        assert len(seen) == 1
        clock.advance(0.01)
    assert len(seen) == 2
    assert results[0].rows == []


async def test_extra_partitions_are_fetched_and_gunzipped(
    server: Server, client: SqlApiClient
) -> None:
    """Partitions 1..N-1 are fetched in order; gzip is undone with or without the header."""
    server.then(200, _result([["1", "a", None]], partitions=3))
    part1 = gzip.compress(orjson.dumps({"data": [["2", "b", None]]}))
    part2 = gzip.compress(orjson.dumps({"data": [["3", "c", None], ["4", "d", None]]}))
    server.answers.append(
        lambda _r: httpx.Response(200, content=part1, headers={"Content-Encoding": "gzip"})
    )
    server.answers.append(lambda _r: httpx.Response(200, content=part2))
    result = await client.execute("SELECT * FROM big")
    assert [row[0] for row in result.rows] == ["1", "2", "3", "4"]
    assert [r.url.params["partition"] for r in server.requests[1:]] == ["1", "2"]
    assert all(r.url.path == f"/api/v2/statements/{HANDLE}" for r in server.requests[1:])


async def test_422_is_sql_error_with_code_and_state(server: Server, client: SqlApiClient) -> None:
    """An execution error carries Snowflake's code, sqlState and message."""
    server.then(
        422,
        {
            "code": "000904",
            "message": "SQL compilation error:\ninvalid identifier 'X'",
            "sqlState": "42000",
            "statementHandle": HANDLE,
        },
    )
    with pytest.raises(SqlError) as info:
        await client.execute("SELECT x FROM t")
    err = info.value
    assert err.code == "000904"
    assert err.sql_state == "42000"
    assert err.status == 422
    assert "invalid identifier 'X'" in str(err)
    assert "SELECT x FROM t" in str(err)
    assert "\n" not in str(err)


async def test_422_after_polling(server: Server, client: SqlApiClient) -> None:
    """A failure reported while polling is the same SqlError."""
    server.then(202, _RUNNING).then(422, {"code": "100132", "sqlState": "P0000", "message": "x"})
    with pytest.raises(SqlError) as info:
        await client.execute("BEGIN; SELECT 1; COMMIT;")
    assert info.value.sql_state == "P0000"


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(408, {}, None), (429, {"Retry-After": "2"}, 2.0), (503, {}, None), (500, {}, None)],
)
async def test_retryable_statuses(
    server: Server,
    client: SqlApiClient,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    """Server timeout, throttling and 5xx are RetryableError; nothing is resent here."""
    server.then(status, {"code": "390505", "message": "busy"}, headers=headers)
    with pytest.raises(RetryableError) as info:
        await client.execute("SELECT 1")
    assert info.value.retry_after == retry_after
    assert len(server.requests) == 1


async def test_401_is_auth_error(server: Server, client: SqlApiClient) -> None:
    """A refused JWT is AuthError."""
    server.then(401, {"code": "390303", "message": "Invalid OAuth access token."})
    with pytest.raises(AuthError):
        await client.execute("SELECT 1")


async def test_incomplete_result_is_an_error(server: Server, client: SqlApiClient) -> None:
    """Code 391908 on a 200 means truncated rows: never returned as if complete (§4.5)."""
    server.then(200, _result([["1", "a", None]], code="391908"))
    with pytest.raises(SqlError, match="LIMIT"):
        await client.execute("SELECT * FROM huge")


async def test_runaway_statement_is_cancelled(
    server: Server, client: SqlApiClient, auto_clock: AutoClock
) -> None:
    """Polling stops 60 s past the statement timeout, cancels it and raises RetryableError."""
    server.answers.extend([lambda _r: httpx.Response(202, json=_RUNNING)] * 40)
    cancelled: list[httpx.Request] = []
    server.cancelled = cancelled
    with pytest.raises(RetryableError, match="cancelled"):
        await client.execute("CALL forever()", timeout_s=10)
    assert sum(auto_clock.slept) >= 70
    assert sum(auto_clock.slept) < 80
    assert len(cancelled) == 1
    assert cancelled[0].url.path == f"/api/v2/statements/{HANDLE}/cancel"


async def test_cancel(server: Server, client: SqlApiClient) -> None:
    """Cancel posts to the handle's cancel URL; an unknown handle is SqlError."""
    server.then(200, {"code": "000604", "sqlState": "57014", "message": "SQL execution canceled"})
    await client.cancel(HANDLE)
    assert server.requests[0].method == "POST"
    assert server.requests[0].url.path == f"/api/v2/statements/{HANDLE}/cancel"
    server.then(422, {"code": "000709", "sqlState": "02000", "message": "Statement not found"})
    with pytest.raises(SqlError) as info:
        await client.cancel("nope")
    assert info.value.code == "000709"


def test_records_parse_values() -> None:
    """records() maps column names to parsed values."""
    rs = ResultSet(["ID", "NAME", "TS"], ["fixed", "text", "timestamp_ntz"],
                   [["7", "x", "0.000000000"]], HANDLE)  # fmt: skip
    assert rs.records() == [{"ID": 7, "NAME": "x", "TS": datetime(1970, 1, 1)}]


_TS_SECONDS = "1616173619.123456789"
_TS_NANOS = "1616173619123456789"
_TS = datetime(2021, 3, 19, 17, 6, 59, 123456)


@pytest.mark.parametrize("encoded", [_TS_SECONDS, _TS_NANOS])
def test_timestamps_in_both_encodings(encoded: str) -> None:
    """Seconds-with-decimals and integer nanoseconds give the same instant (§4.5)."""
    assert parse_value(encoded, "timestamp_ntz") == _TS
    assert parse_value(encoded, "TIMESTAMP_LTZ") == _TS.replace(tzinfo=UTC)
    tz = parse_value(f"{encoded} 1500", "timestamp_tz")
    assert tz == _TS.replace(tzinfo=UTC)
    assert tz.utcoffset() == timedelta(minutes=60)
    assert tz.tzinfo == timezone(timedelta(hours=1))


@pytest.mark.parametrize(
    ("value", "type_", "expected"),
    [
        (None, "text", None),
        ("abc", "TEXT", "abc"),
        ("42", "fixed", 42),
        ("-3", "fixed", -3),
        ("1.50", "fixed", Decimal("1.50")),
        ("1.5e3", "real", 1500.0),
        ("true", "boolean", True),
        ("false", "boolean", False),
        ("18262", "date", date(2020, 1, 1)),
        ("2020-01-01", "date", date(2020, 1, 1)),
        ("45296.500000000", "time", time(12, 34, 56, 500000)),
        ("45296500000000", "time", time(12, 34, 56, 500000)),
        ("-1.500000000", "timestamp_ntz", datetime(1969, 12, 31, 23, 59, 58, 500000)),
        ("2021-03-19T17:06:59", "timestamp_ntz", datetime(2021, 3, 19, 17, 6, 59)),
        ('{"a": [1, 2]}', "variant", {"a": [1, 2]}),
        ("[1,2]", "array", [1, 2]),
        ("0aff", "binary", b"\x0a\xff"),
        ("not json", "variant", "not json"),
        ("zz", "fixed", "zz"),
        ("x", "geography", "x"),
    ],
)
def test_parse_value(value: str | None, type_: str, expected: object) -> None:
    """Each SQL API type is parsed; what does not parse comes back unchanged."""
    assert parse_value(value, type_) == expected
