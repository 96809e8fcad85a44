"""A SQL API client (our own `SqlApiClient`) for a running stand-in, and small query helpers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from streamd.clock import SystemClock
from streamd.snowflake.auth import KeyPairAuth
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin


@contextlib.asynccontextmanager
async def sql_client(standin: Standin) -> AsyncIterator[SqlApiClient]:
    """A `SqlApiClient` talking to `standin` (which accepts any key when it has none)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    clock = SystemClock()
    async with httpx.AsyncClient(timeout=60) as http:
        yield SqlApiClient(http, KeyPairAuth(key, "ACCT", "USER", clock), standin.url, clock)


async def rows(client: SqlApiClient, statement: str, **kw: Any) -> list[dict[str, Any]]:
    """The records of one statement."""
    return (await client.execute(statement, **kw)).records()


async def script(client: SqlApiClient, text: str, **kw: Any) -> None:
    """Run a multi-statement script (any number of statements)."""
    await client.execute(text, multi_statement_count=0, **kw)
