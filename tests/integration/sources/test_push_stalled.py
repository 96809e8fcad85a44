"""HTTP push while the sink is stalled: the spool fills, clients get 429, and after recovery every
acknowledged row is in the table exactly once (the clients that retried included)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import httpx
import orjson
import pytest

from streamd.config.model import Config
from streamd.daemon.run import Daemon
from streamd.snowflake.keys import generate_key_pair
from streamd.sources.http_push.source import HttpPushSource
from streamd.standin.server import Standin
from streamd.testing import standin_query
from tests.helpers import eventually

pytestmark = pytest.mark.slow
SENSOR = "MANUFACTURING_DEMO.RAW_DATA.SENSOR_DATA_RAW"
KEY, _ = generate_key_pair()
CLIENTS, BATCHES, ROWS = 4, 4, 40


def _config(standin: Standin, state: Path) -> Config:
    return Config.model_validate(
        {
            "state_dir": str(state),
            "target": {"kind": "snowflake", "url": standin.url, "private_key": KEY.decode()},
            "delivery": {
                "linger_ms": 20,
                "status_poll_ms": 50,
                "max_rows": 25,
                "max_inflight_batches": 2,
                "lane_capacity": 20,
                "drain_timeout_s": 60,
            },
            # A small spool: a stalled sink fills it within a few hundred rows.
            "spool": {"segment_bytes": 2048, "max_bytes": 8192},
            "admin": {"enabled": False},
            "log": {"level": "warning"},
            "sources": [
                {
                    "kind": "http_push",
                    "name": "push",
                    "port": 0,
                    "tokens": ["s3cret"],
                    "tables": {"sensors": SENSOR},
                    "admission_wait_ms": 50,
                    # Longer than the stall: an admitted request waits for durability (200),
                    # it does not time out into a 503 whose rows might land anyway.
                    "ack_timeout_s": 60,
                }
            ],
        }
    )


class Client:
    """Sends its batches in order; on 429 waits Retry-After and sends the same batch again."""

    def __init__(self, name: str, url: str, http: httpx.AsyncClient, saw_429: anyio.Event) -> None:
        self.name = name
        self._url = url
        self._http = http
        self._saw_429 = saw_429
        self.statuses: Counter[int] = Counter()
        self.acknowledged: list[str] = []
        """EVENT_IDs of rows answered 200."""

    async def run(self) -> None:
        for batch in range(BATCHES):
            ids = [f"{self.name}:{batch}:{i}" for i in range(ROWS)]
            body = b"".join(
                orjson.dumps(
                    {
                        "EVENT_ID": event_id,
                        "EVENT_TIMESTAMP": "2026-11-23T10:00:00",
                        "EQUIPMENT_ID": "EQ-0001",
                        "TEMPERATURE": 20.5,
                    }
                )
                + b"\n"
                for event_id in ids
            )
            while True:
                response = await self._http.post(
                    f"{self._url}/v1/tables/sensors/rows",
                    content=body,
                    headers={
                        "Authorization": "Bearer s3cret",
                        "Content-Type": "application/x-ndjson",
                    },
                )
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    answer = response.json()
                    assert answer["accepted"] == ROWS
                    assert int(answer["last_offset"]) - int(answer["first_offset"]) >= ROWS - 1
                    self.acknowledged += ids
                    break
                assert response.status_code == 429, response.text
                self._saw_429.set()
                await anyio.sleep(int(response.headers["Retry-After"]))


def _counts(standin: Standin) -> tuple[int, int]:
    [[total, distinct]] = standin_query(
        standin.url, f"select count(*), count(distinct EVENT_ID) from {SENSOR}"
    )
    return int(total or 0), int(distinct or 0)


async def test_stalled_sink_answers_429_then_delivers_every_acknowledged_row_once(
    standin: Standin, tmp_path: Path
) -> None:
    standin.faults.freeze_commits()  # appends are answered, nothing commits: the spool fills
    daemon = Daemon(_config(standin, tmp_path / "state"))
    source = daemon.sources[0]
    assert isinstance(source, HttpPushSource)
    saw_429 = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(30):
            await daemon.ready.wait()
            await eventually(lambda: source.url is not None)  # reported once it listens
        async with httpx.AsyncClient(timeout=120) as http:
            early = [Client(f"early{i}", source.url, http, saw_429) for i in range(CLIENTS)]
            late = [Client(f"late{i}", source.url, http, saw_429) for i in range(CLIENTS)]
            async with anyio.create_task_group() as running:
                for client in early:
                    running.start_soon(client.run)
                with anyio.fail_after(60):
                    # Nothing commits, so the spool fills, the early clients' requests wait
                    # and the push source refuses new ones.
                    await eventually(
                        lambda: (
                            any(s.writer_blocked for s in daemon.spools.values())
                            and source.refusing
                        ),
                        within=60,
                    )
                    for client in late:
                        running.start_soon(client.run)
                    await saw_429.wait()
                committed_while_stalled = daemon.summary().tables[SENSOR].committed
                standin.faults.release_commits()
        daemon.stop()

    clients = early + late
    assert committed_while_stalled == 0
    statuses = sum((c.statuses for c in clients), Counter[int]())
    assert set(statuses) == {200, 429}, statuses
    assert statuses[200] == len(clients) * BATCHES
    assert all(c.statuses[429] for c in late), "a client arriving at a full pipeline was let in"
    acknowledged = [i for c in clients for i in c.acknowledged]
    assert len(acknowledged) == len(set(acknowledged)) == len(clients) * BATCHES * ROWS
    assert await anyio.to_thread.run_sync(_counts, standin) == (len(acknowledged),) * 2
    landed = {row[0] for row in standin_query(standin.url, f"select EVENT_ID from {SENSOR}")}
    assert landed == set(acknowledged)  # the retried batches are in too
