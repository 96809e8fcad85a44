"""The reconciler against a real stand-in over HTTP: a SQL API client and a daemon config."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamd.clock import SystemClock
from streamd.config.model import Config
from streamd.metrics import Metrics
from streamd.reconciler.config import ReconcilerConfig
from streamd.reconciler.loop import Reconciler
from streamd.snowflake.auth import KeyPairAuth, load_private_key
from streamd.snowflake.keys import generate_key_pair
from streamd.snowflake.sql_api import SqlApiClient
from streamd.standin.server import Standin

_KEY, _ = generate_key_pair()


@contextlib.asynccontextmanager
async def sql_client(standin: Standin) -> AsyncIterator[SqlApiClient]:
    """Our SqlApiClient aimed at a running stand-in (it accepts any key when given none)."""
    clock = SystemClock()
    key = load_private_key(_KEY, None, source="test key")
    async with httpx.AsyncClient(timeout=60) as http:
        yield SqlApiClient(http, KeyPairAuth(key, "ACCT", "STREAMD", clock), standin.url, clock)


@pytest.fixture
async def sql(standin: Standin) -> AsyncIterator[SqlApiClient]:
    """A SQL API client for the `standin` fixture."""
    async with sql_client(standin) as client:
        yield client


def reconciler(sql: SqlApiClient, databases: list[str], **config: Any) -> Reconciler:
    """A reconciler over the stand-in with the real clock, watching `databases`."""
    return Reconciler(
        ReconcilerConfig.model_validate(config), sql, SystemClock(), Metrics(), databases=databases
    )


def daemon_config(
    standin: Standin, state: Path, reconciler: dict[str, Any], *, admin: bool = False
) -> Config:
    """A small plant aimed at `standin`, with the given `[reconciler]` section."""
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": _KEY.decode()},
            "delivery": {"linger_ms": 20, "status_poll_ms": 50, "drain_timeout_s": 60},
            "admin": {"enabled": admin, "port": 0},
            "log": {"level": "warning"},
            "reconciler": reconciler,
            "sources": [
                {
                    "kind": "manufacturing",
                    "equipment_count": 2,
                    "line_count": 1,
                    "product_count": 1,
                    "sensor_interval_ms": 20,
                }
            ],
        }
    )
