"""Real inputs through the real daemon: HTTP push answers only after durability; NDJSON files tail."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import httpx

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair
from streamd.sources.http_push.source import HttpPushSource
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.helpers import eventually

SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
PRODUCTION = "MANUFACTURING_DEMO.RAW_DATA.PRODUCTION_DATA_RAW"
KEY, _ = generate_key_pair()


def _config(standin: Standin, state: Path, source: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": KEY.decode()},
            "delivery": {"linger_ms": 20, "status_poll_ms": 50},
            "admin": {"enabled": False},
            "sources": [source],
        }
    )


def _sensor(i: int, client: str) -> dict[str, Any]:
    return {
        "EVENT_ID": f"{client}:{i}",
        "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
        "EQUIPMENT_ID": "EQ-0001",
        "TEMPERATURE": 20.0 + i,
    }


def _counts(standin: Standin, table: str) -> tuple[int, int]:
    [[total, distinct]] = standin_query(
        standin.url, f"select count(*), count(distinct EVENT_ID) from {table}"
    )
    return int(total or 0), int(distinct or 0)


async def test_http_push_acknowledges_after_the_spool_and_delivers_once(
    standin: Standin, tmp_path: Path
) -> None:
    """Concurrent clients get 200 with offset ranges; every row lands once; a bad token is 403."""
    config = _config(
        standin,
        tmp_path / "state",
        {
            "kind": "http_push",
            "name": "push",
            "port": 0,
            "tokens": ["s3cret"],
            "tables": {"sensors": SENSOR},
        },
    )
    daemon = Daemon(config)
    source = daemon.sources[0]
    assert isinstance(source, HttpPushSource)
    answers: list[httpx.Response] = []

    async def client(name: str, http: httpx.AsyncClient) -> None:
        for batch in range(5):
            body = "\n".join(json.dumps(_sensor(batch * 20 + i, name)) for i in range(20))
            answers.append(
                await http.post(
                    f"{source.url}/v1/tables/sensors/rows",
                    content=body,
                    headers={
                        "Authorization": "Bearer s3cret",
                        "Content-Type": "application/x-ndjson",
                    },
                )
            )

    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(20):
            await daemon.ready.wait()
            await eventually(lambda: source.url is not None)  # reported once it listens
        async with httpx.AsyncClient(timeout=30) as http:
            denied = await http.post(
                f"{source.url}/v1/tables/sensors/rows",
                content=b"{}",
                headers={"Authorization": "Bearer wrong", "Content-Type": "application/x-ndjson"},
            )
            async with anyio.create_task_group() as clients:
                for name in ("a", "b", "c"):
                    clients.start_soon(client, name, http)
        daemon.stop()

    assert denied.status_code == 403
    assert [a.status_code for a in answers] == [200] * 15
    offsets = sorted(int(a.json()["first_offset"]) for a in answers)
    assert offsets == sorted(set(offsets))
    assert await anyio.to_thread.run_sync(_counts, standin, SENSOR) == (300, 300)


async def test_ndjson_tail_across_restart_without_gaps_or_repeats(
    standin: Standin, tmp_path: Path
) -> None:
    """Lines written before, during and between two runs each land exactly once."""
    log = tmp_path / "events.ndjson"

    def write(first: int, count: int) -> None:
        with log.open("a") as f:
            for i in range(first, first + count):
                f.write(
                    json.dumps(
                        {
                            "EVENT_ID": f"line:{i}",
                            "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
                            "LINE_ID": "LINE-01",
                            "UNITS_PRODUCED": i,
                        }
                    )
                    + "\n"
                )

    config = _config(
        standin,
        tmp_path / "state",
        {
            "kind": "ndjson",
            "name": "files",
            "paths": [str(tmp_path / "*.ndjson")],
            "table": PRODUCTION,
            "poll_interval_ms": 20,
        },
    )
    write(0, 40)
    await Daemon(config).run(duration=2)
    write(40, 25)
    await Daemon(config).run(duration=2)
    assert await anyio.to_thread.run_sync(_counts, standin, PRODUCTION) == (65, 65)


async def test_ndjson_tail_across_rotations_and_restarts_without_gaps_or_repeats(
    standin: Standin, tmp_path: Path
) -> None:
    """Rotated while running and while stopped, restarted twice: every line lands exactly once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    current = logs / "events.ndjson"
    written = 0

    def write(path: Path, count: int) -> None:
        nonlocal written
        with path.open("a") as f:
            for i in range(written, written + count):
                f.write(
                    json.dumps(
                        {
                            "EVENT_ID": f"rot:{i}",
                            "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
                            "LINE_ID": "LINE-01",
                            "UNITS_PRODUCED": i,
                        }
                    )
                    + "\n"
                )
        written += count

    config = _config(
        standin,
        tmp_path / "state",
        {
            "kind": "ndjson",
            "name": "files",
            "paths": [str(logs / "*.ndjson")],  # rotated names (events.ndjson.1) do not match
            "table": PRODUCTION,
            "poll_interval_ms": 20,
        },
    )

    async def committed(daemon: Daemon, rows: int) -> None:
        await eventually(lambda: daemon.summary().tables[PRODUCTION].committed >= rows, within=60)

    # Run 1: a rotation while running (the old writer still appends to the renamed file).
    write(current, 30)
    first = Daemon(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await committed(first, 30)
        with current.open("a"):
            os.rename(current, logs / "events.ndjson.1")
        write(logs / "events.ndjson.1", 10)
        write(current, 20)
        await committed(first, 60)
        write(current, 15)  # may or may not be read before the stop: the position decides
        first.stop()
    # Stopped: more lines, then a rotation nobody sees happen, then a new file.
    write(current, 10)
    os.rename(current, logs / "events.ndjson.2")
    write(current, 25)
    await Daemon(config).run(duration=3)
    # Run 3: nothing left to read, nothing read twice.
    write(current, 5)
    await Daemon(config).run(duration=2)

    assert written == 115
    assert await anyio.to_thread.run_sync(_counts, standin, PRODUCTION) == (written, written)
    ids = {r[0] for r in standin_query(standin.url, f"select EVENT_ID from {PRODUCTION}")}
    assert ids == {f"rot:{i}" for i in range(written)}
