"""A scripted SQL API v2 (§4) over httpx.MockTransport: statements matched by pattern, answered
with result sets shaped like Snowflake's (rowType names and types, every value a string)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamd.reconciler.config import ReconcilerConfig
from streamd.reconciler.context import CheckContext
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.sql_api import SqlApiClient
from streamd.testing import ManualClock

KEY = Path(__file__).parents[1] / "snowflake" / "data" / "rsa_key.p8"
NOW = 1_763_900_000.0
"""ManualClock's default wall time: every fixture timestamp is relative to it."""

SHOW_STREAMS = [
    ("created_on", "timestamp_ltz"),
    ("name", "text"),
    ("database_name", "text"),
    ("schema_name", "text"),
    ("owner", "text"),
    ("comment", "text"),
    ("table_name", "text"),
    ("source_type", "text"),
    ("base_tables", "text"),
    ("type", "text"),
    ("stale", "text"),
    ("mode", "text"),
    ("stale_after", "timestamp_ltz"),
    ("invalid_reason", "text"),
    ("owner_role_type", "text"),
]
SHOW_TASKS = [
    ("created_on", "timestamp_ltz"),
    ("name", "text"),
    ("id", "text"),
    ("database_name", "text"),
    ("schema_name", "text"),
    ("owner", "text"),
    ("comment", "text"),
    ("warehouse", "text"),
    ("schedule", "text"),
    ("predecessors", "text"),
    ("state", "text"),
    ("definition", "text"),
    ("condition", "text"),
    ("allow_overlapping_execution", "text"),
    ("error_integration", "text"),
    ("last_committed_on", "timestamp_ltz"),
    ("last_suspended_on", "timestamp_ltz"),
    ("owner_role_type", "text"),
    ("config", "text"),
    ("last_suspended_reason", "text"),
]
TASK_HISTORY = [
    ("NAME", "text"),
    ("DATABASE_NAME", "text"),
    ("SCHEMA_NAME", "text"),
    ("STATE", "text"),
    ("ERROR_CODE", "fixed"),
    ("ERROR_MESSAGE", "text"),
    ("SCHEDULED_TIME", "timestamp_ltz"),
    ("COMPLETED_TIME", "timestamp_ltz"),
]
SHOW_DYNAMIC_TABLES = [
    ("created_on", "timestamp_ltz"),
    ("name", "text"),
    ("database_name", "text"),
    ("schema_name", "text"),
    ("rows", "fixed"),
    ("bytes", "fixed"),
    ("owner", "text"),
    ("target_lag", "text"),
    ("refresh_mode", "text"),
    ("refresh_mode_reason", "text"),
    ("warehouse", "text"),
    ("text", "text"),
    ("scheduling_state", "text"),
    ("last_suspended_on", "timestamp_ltz"),
    ("is_iceberg", "text"),
    ("data_timestamp", "timestamp_ltz"),
]
REFRESH_HISTORY = [
    ("NAME", "text"),
    ("SCHEMA_NAME", "text"),
    ("DATABASE_NAME", "text"),
    ("STATE", "text"),
    ("STATE_CODE", "text"),
    ("STATE_MESSAGE", "text"),
    ("DATA_TIMESTAMP", "timestamp_ltz"),
    ("REFRESH_END_TIME", "timestamp_ltz"),
]
LIST_STAGE = [("name", "text"), ("size", "fixed"), ("md5", "text"), ("last_modified", "text")]
COPY_HISTORY = [
    ("FILE_NAME", "text"),
    ("STATUS", "text"),
    ("ERROR_COUNT", "fixed"),
    ("FIRST_ERROR_MESSAGE", "text"),
    ("LAST_LOAD_TIME", "timestamp_ltz"),
]


def ts(seconds_from_now: float) -> str:
    """A TIMESTAMP_LTZ value as the SQL API sends it: epoch seconds with 9 decimals (§4.5)."""
    return f"{NOW + seconds_from_now:.9f}"


def http_date(seconds_from_now: float) -> str:
    """LIST's `last_modified`: an RFC 1123 GMT date."""
    moment = datetime.fromtimestamp(NOW + seconds_from_now, UTC)
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


@dataclass
class Answer:
    pattern: re.Pattern[str]
    columns: list[tuple[str, str]]
    rows: list[list[str | None]] | Callable[[], list[list[str | None]]]
    failure: tuple[str, str, str] | None = None


@dataclass
class FakeSnowflake:
    """Answers statements by the first matching pattern; unmatched ones fail like unknown objects."""

    answers: list[Answer] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)

    def answer(
        self,
        pattern: str,
        columns: list[tuple[str, str]],
        rows: list[list[str | None]] | Callable[[], list[list[str | None]]],
    ) -> None:
        """Answer statements matching `pattern` (a regex, case-insensitive) with these rows."""
        self.answers.insert(
            0, Answer(re.compile(pattern, re.IGNORECASE | re.DOTALL), columns, rows)
        )

    def fail(self, pattern: str, code: str = "002003", message: str = "does not exist") -> None:
        """Answer matching statements with a 422 QueryFailureStatus."""
        self.answers.insert(
            0,
            Answer(
                re.compile(pattern, re.IGNORECASE | re.DOTALL), [], [], (code, "02000", message)
            ),
        )

    def handler(self, request: httpx.Request) -> httpx.Response:
        statement = orjson.loads(request.content)["statement"]
        self.statements.append(statement)
        handle = str(uuid.uuid4())
        for answer in self.answers:
            if not answer.pattern.search(statement):
                continue
            if answer.failure is not None:
                code, state, message = answer.failure
                return httpx.Response(
                    422,
                    json={
                        "code": code,
                        "sqlState": state,
                        "message": message,
                        "statementHandle": handle,
                    },
                )
            data = answer.rows() if callable(answer.rows) else answer.rows
            return httpx.Response(200, json=result_set(answer.columns, data, handle))
        return httpx.Response(
            422,
            json={
                "code": "002003",
                "sqlState": "02000",
                "message": f"SQL compilation error: no answer scripted for {statement}",
                "statementHandle": handle,
            },
        )


def result_set(
    columns: list[tuple[str, str]], data: list[list[str | None]], handle: str
) -> dict[str, Any]:
    """A ResultSet body (§4.5)."""
    return {
        "code": "090001",
        "sqlState": "00000",
        "message": "Statement executed successfully.",
        "statementHandle": handle,
        "createdOn": int(NOW * 1000),
        "statementStatusUrl": f"/api/v2/statements/{handle}",
        "resultSetMetaData": {
            "numRows": len(data),
            "format": "jsonv2",
            "rowType": [
                {
                    "name": name,
                    "type": type_,
                    "nullable": True,
                    "length": None,
                    "precision": None,
                    "scale": None,
                }
                for name, type_ in columns
            ],
            "partitionInfo": [{"rowCount": len(data), "uncompressedSize": 100}],
        },
        "data": data,
    }


@pytest.fixture
def fake() -> FakeSnowflake:
    return FakeSnowflake()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_wall=NOW)


@pytest.fixture
async def sql(fake: FakeSnowflake, clock: ManualClock) -> AsyncIterator[SqlApiClient]:
    key = load_private_key(KEY.read_bytes(), None, source="test key")
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake.handler)) as http:
        yield SqlApiClient(
            http,
            KeyPairAuth(key, "MYORG-ACCT", "STREAMD", clock),
            "https://myorg-acct.snowflakecomputing.com",
            clock,
        )


def context(databases: list[str] | None = None, **config: Any) -> CheckContext:
    """A check context over `ReconcilerConfig(**config)` watching `databases` (default DB)."""
    return CheckContext(ReconcilerConfig.model_validate(config), databases or ["DB"])
