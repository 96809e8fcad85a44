"""A raw httpx client holding a stand-in scoped token, for contract tests that bypass our client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from streamd.standin.server import Standin


@contextlib.asynccontextmanager
async def connect(standin: Standin) -> AsyncIterator[httpx.AsyncClient]:
    """A client for `standin` that already exchanged a bearer for a scoped token."""
    async with httpx.AsyncClient(
        base_url=standin.url, headers={"Authorization": "Bearer any"}
    ) as c:
        r = await c.post(
            "/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "scope": "h"},
        )
        assert r.status_code == 200
        c.headers["Authorization"] = f"Bearer {r.text}"
        yield c
