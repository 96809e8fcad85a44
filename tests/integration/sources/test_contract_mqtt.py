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
from tests.unit.sources.contract import ContractSuite, HarnessFactory, one_run

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


class TestMqttContract(ContractSuite):
    """The contract over mqtt; resuming comes from the broker's persistent session."""


async def test_the_harness_reaches_the_source_through_the_broker(
    harness: HarnessFactory, tmp_path: Path
) -> None:
    """What the contract relies on: fed messages arrive once each, in order, as rows."""
    async with harness(tmp_path) as h, one_run(h) as run:
        await h.feed(3)
        rows = [e.row for e in await run.take(3, ack=True)]
        await h.before_stop()
    assert rows == [{"id": "msg:0"}, {"id": "msg:1"}, {"id": "msg:2"}]
