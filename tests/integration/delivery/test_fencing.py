"""Two daemons with one identity: the second opener fences the first, and no row lands twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from structlog.testing import capture_logs

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.daemon.status import RunSummary
from streamd.errors import ChannelFenced
from streamd.snowflake.keys import generate_key_pair
from streamd.standin.server import Standin
from streamd.testing import standin_query

TABLES = ("SENSOR_DATA_RAW", "PRODUCTION_DATA_RAW", "QUALITY_DATA_RAW")


def daemon_config(standin: Standin, state: Path, id_prefix: str, key: bytes) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": key.decode()},
            "delivery": {"channel_prefix": "plant", "linger_ms": 20, "status_poll_ms": 50},
            "admin": {"enabled": False},
            "sources": [
                {
                    "kind": "manufacturing",
                    "id_prefix": id_prefix,
                    "equipment_count": 3,
                    "line_count": 1,
                    "product_count": 1,
                    "sensor_interval_ms": 10,
                    "production_interval_ms": 10,
                    "quality_interval_ms": 10,
                }
            ],
        }
    )


def _find(group: BaseException, kind: type[BaseException]) -> BaseException | None:
    if isinstance(group, kind):
        return group
    if isinstance(group, BaseExceptionGroup):
        for inner in group.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None


async def test_second_opener_fences_the_first(standin: Standin, tmp_path: Path) -> None:
    """Daemon A stops with channel_fenced once B opens the same channels; tables hold no duplicate."""
    key, _ = generate_key_pair()
    first = Daemon(daemon_config(standin, tmp_path / "a", "a-", key))
    second = Daemon(daemon_config(standin, tmp_path / "b", "b-", key))
    outcome: dict[str, Any] = {}

    async def run_first() -> None:
        try:
            await first.run(duration=30)
        except BaseException as exc:
            outcome["first"] = exc

    with capture_logs() as logs:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_first)
            with anyio.fail_after(20):
                await first.ready.wait()
            await anyio.sleep(1)
            summary: RunSummary = await second.run(duration=2)

    fenced = _find(outcome.get("first"), ChannelFenced)  # type: ignore[arg-type]
    assert fenced is not None, outcome
    assert "channel_prefix" in str(fenced)
    events = [e for e in logs if e["event"] == "channel_fenced"]
    assert events
    assert events[0]["log_level"] == "error"
    assert summary.uncommitted == 0
    # The fenced daemon still says what it delivered, with why it stopped.
    [stopped] = [e for e in logs if e["event"] == "daemon_stopped" and "error" in e]
    assert stopped["error"].startswith("ChannelFenced: ")
    assert sum(t["committed"] for t in stopped["tables"].values()) > 0

    for table in TABLES:
        total, distinct, from_b = await anyio.to_thread.run_sync(
            count_ids, standin, f"MANUFACTURING_DEMO.RAW_DATA.{table}"
        )
        assert total == distinct
        assert from_b == summary.tables[f"MANUFACTURING_DEMO.RAW_DATA.{table}"].produced


def count_ids(standin: Standin, table: str) -> tuple[int, int, int]:
    """(rows, distinct ids, rows from daemon B) through the running stand-in's SQL API."""
    [row] = standin_query(
        standin.url,
        f"select count(*), count(distinct EVENT_ID), count_if(EVENT_ID like 'b-%') from {table}",
    )
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)
