"""The shared source contract (`tests/unit/sources/contract.py`) over mqtt, on a real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import anyio
import anyio.abc
import orjson
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from streamd.clock import SystemClock
from streamd.rows import Envelope, Row
from streamd.sources.base import SourceContext
from streamd.sources.mqtt.source import MqttSource, MqttSourceConfig
from streamd.testing import MemorySequences
from tests.unit.sources.contract import (
    HarnessFactory,
    check_backpressure,
    check_resumes,
    check_stops_on_cancellation,
)

from .conftest import Broker

pytestmark = pytest.mark.slow
TOPIC = "contract/line-1"


class MqttHarness:
    """QoS 1 messages published by the test; one persistent session (a fixed client id)."""

    kind = "mqtt"
    redelivers = True
    ordered = True

    def __init__(self, publisher: aiomqtt.Client, port: int) -> None:
        self._publisher = publisher
        self._config = MqttSourceConfig.model_validate(
            {
                "port": port,
                "client_id": "contract",
                "reconnect_min_s": 0.1,
                "subscriptions": [{"topic": "contract/+", "table": "DB.RAW.EVENTS"}],
            }
        )
        self._next = 0

    def context(self, send: MemoryObjectSendStream[Envelope]) -> SourceContext:
        return SourceContext(send, SystemClock(), MemorySequences())

    async def serve(self, ctx: SourceContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(MqttSource(self._config).run, ctx)  # started once subscribed
            task_status.started()

    async def feed(self, n: int) -> None:
        for i in range(self._next, self._next + n):
            await self._publisher.publish(TOPIC, orjson.dumps({"id": f"msg:{i}"}), qos=1)
        self._next += n

    async def while_full(self) -> None:
        await self.feed(3)  # they wait at the broker (its in-flight window), not in this process

    async def before_stop(self) -> None:
        await anyio.sleep(0.3)  # let the PUBACKs of the acknowledged rows reach the broker

    async def after_stop(self) -> None:
        pass

    async def resend(self) -> None:
        pass

    async def settle(self) -> None:
        pass

    def row_id(self, row: Row) -> str:
        return str(row["id"])


@pytest.fixture
def harness(broker: Broker) -> HarnessFactory:
    @asynccontextmanager
    async def open_harness(_: Path) -> AsyncIterator[Any]:
        async with aiomqtt.Client("127.0.0.1", broker.port) as publisher:
            yield MqttHarness(publisher, broker.port)

    return open_harness


async def test_pushes_into_the_bounded_stream_and_waits_when_full(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    async with harness(tmp_path) as h:
        await check_backpressure(h)


@pytest.mark.parametrize("blocked", [False, True], ids=["idle", "blocked"])
async def test_stops_promptly_on_cancellation(
    harness: HarnessFactory, tmp_path: Path, blocked: bool
) -> None:
    async with harness(tmp_path) as h:
        await check_stops_on_cancellation(h, blocked=blocked)


async def test_resumes_from_the_persistent_session(harness: HarnessFactory, tmp_path: Path) -> None:
    async with harness(tmp_path) as h:
        await check_resumes(h)
