"""The shared source contract (see `contract.py`) over manufacturing, retail, http_push and ndjson.

mqtt runs the same checks in `tests/integration/sources/test_contract_mqtt.py` (it needs a
broker); the import check below covers every kind, mqtt included.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import httpx
import orjson
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import BaseModel

from streamd.clock import SystemClock
from streamd.config.model import Config
from streamd.rows import Envelope, Row
from streamd.sources.base import Source, SourceContext
from streamd.sources.http_push.source import HttpPushSource, HttpPushSourceConfig
from streamd.sources.ndjson.config import NdjsonSourceConfig
from streamd.sources.ndjson.source import NdjsonSource
from streamd.sources.synthetic.manufacturing import ManufacturingSource, ManufacturingSourceConfig
from streamd.sources.synthetic.retail import RetailSource, RetailSourceConfig
from streamd.testing import ManualClock, MemorySequences, settle

from .contract import ContractSuite, HarnessFactory, check_imports_no_delivery_code

TABLE = "DB.RAW.EVENTS"
TOKEN = "contract-token"
KINDS = ("manufacturing", "retail", "http_push", "ndjson", "mqtt")
# Where each kind's source and config are defined.
MODULES = {
    "manufacturing": "streamd.sources.synthetic.manufacturing",
    "retail": "streamd.sources.synthetic.retail",
    "http_push": "streamd.sources.http_push.source",
    "ndjson": "streamd.sources.ndjson.source",
    "mqtt": "streamd.sources.mqtt.source",
}


class GeneratorHarness:
    """A synthetic source with one producer, on a manual clock (time moves only when fed)."""

    redelivers = False
    ordered = True

    def __init__(self, kind: str, make: Callable[[], Source], interval_s: float) -> None:
        self.kind = kind
        self._make = make
        self._interval = interval_s
        self._sequences = MemorySequences()  # survives restarts, like sequences.json
        self._clock = ManualClock()

    def context(self, send: MemoryObjectSendStream[Envelope]) -> SourceContext:
        self._clock = ManualClock()  # a fresh one per run: a dead run's sleepers do not count
        return SourceContext(send, self._clock, self._sequences)

    async def serve(self, ctx: SourceContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        await self._make().run(ctx)

    async def feed(self, n: int) -> None:
        await settle(self._clock, 1)
        # Two spare intervals cover the random phase and jitter: at least n rows come due.
        self._clock.advance((n + 2) * self._interval)

    async def while_full(self) -> None:
        self._clock.advance(10 * self._interval)  # more rows due: they wait, none is buffered

    async def before_stop(self) -> None:
        pass

    async def after_stop(self) -> None:
        pass

    async def resend(self) -> None:
        pass

    async def settle(self) -> None:
        pass

    def row_id(self, row: Row) -> str:
        return str(row["EVENT_ID"])


class NdjsonHarness:
    """One file appended to by the test; positions under the harness directory."""

    kind = "ndjson"
    redelivers = True
    ordered = True

    def __init__(self, tmp: Path) -> None:
        (tmp / "in").mkdir(parents=True)
        self._file = tmp / "in" / "events.ndjson"
        self._state = tmp / "state"
        self._config = NdjsonSourceConfig(
            name="files",
            paths=[str(tmp / "in" / "*.ndjson")],
            table=TABLE,
            poll_interval_ms=10,
            drain_timeout_s=0.2,
        )
        self._next = 0

    def context(self, send: MemoryObjectSendStream[Envelope]) -> SourceContext:
        return SourceContext(send, SystemClock(), MemorySequences())

    async def serve(self, ctx: SourceContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        await NdjsonSource(self._config, self._state).run(ctx)

    async def feed(self, n: int) -> None:
        with self._file.open("ab") as f:
            for i in range(self._next, self._next + n):
                f.write(orjson.dumps({"id": f"line:{i}"}) + b"\n")
        self._next += n

    async def while_full(self) -> None:
        await self.feed(3)  # appended lines wait in the file

    async def before_stop(self) -> None:
        pass

    async def after_stop(self) -> None:
        pass

    async def resend(self) -> None:
        pass

    async def settle(self) -> None:
        pass

    def row_id(self, row: Row) -> str:
        return str(row["id"])


class PushHarness:
    """Clients POSTing in the background; they resend what they were told was not stored."""

    kind = "http_push"
    redelivers = True
    ordered = False

    def __init__(self, http: httpx.AsyncClient, tg: anyio.abc.TaskGroup) -> None:
        self._http = http
        self._tg = tg
        self._config = HttpPushSourceConfig.model_validate(
            {
                "name": "push",
                "port": 0,
                "tokens": [TOKEN],
                "tables": {"events": TABLE},
                "admission_wait_ms": 50,
                "ack_timeout_s": 30,
            }
        )
        self._url = ""
        self._next = 0
        self._answers: list[anyio.Event] = []
        self.unconfirmed: list[Row] = []
        """Rows whose request was not answered 200: the client must send them again."""
        self.dropped: list[str] = []
        """Requests that got no HTTP answer at all (the source must always answer)."""

    def context(self, send: MemoryObjectSendStream[Envelope]) -> SourceContext:
        return SourceContext(send, SystemClock(), MemorySequences())

    async def serve(self, ctx: SourceContext, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        source = HttpPushSource(self._config)
        async with anyio.create_task_group() as tg:
            self._url = await tg.start(source.run, ctx)
            task_status.started()

    async def feed(self, n: int) -> None:
        rows = [{"id": f"push:{i}"} for i in range(self._next, self._next + n)]
        self._next += n
        self._post_soon(rows)

    def _post_soon(self, rows: list[Row]) -> None:
        answered = anyio.Event()
        self._answers.append(answered)
        self._tg.start_soon(self._post, rows, answered)

    async def _post(self, rows: list[Row], answered: anyio.Event) -> None:
        try:
            response = await self._http.post(
                f"{self._url}/v1/tables/events/rows",
                content=b"".join(orjson.dumps(r) + b"\n" for r in rows),
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/x-ndjson",
                },
            )
        except httpx.HTTPError as exc:
            self.dropped.append(repr(exc))
            self.unconfirmed += rows
        else:
            if response.status_code == 503:
                body = response.json()
                lines = sorted(body["pending"] + body["not_sent"])
                self.unconfirmed += [rows[line - 1] for line in lines]
            elif response.status_code != 200:
                self.unconfirmed += rows
        finally:
            answered.set()

    async def while_full(self) -> None:
        # The admission window is a time rule: a stream full for longer than it answers 429.
        await anyio.sleep(0.2)
        response = await self._http.post(
            f"{self._url}/v1/tables/events/rows",
            content=b'{"id": "refused"}\n',
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"},
        )
        assert response.status_code == 429, response.text
        assert response.headers["Retry-After"] == "1"

    async def before_stop(self) -> None:
        pass

    async def after_stop(self) -> None:
        for answered in self._answers:
            with anyio.fail_after(30):
                await answered.wait()
        assert self.dropped == [], "a request in flight at stop got no answer"

    async def resend(self) -> None:
        rows, self.unconfirmed = self.unconfirmed, []
        if rows:
            self._post_soon(rows)

    async def settle(self) -> None:
        await self.after_stop()
        assert self.unconfirmed == [], "rows the pipeline acknowledged were not confirmed"

    def row_id(self, row: Row) -> str:
        return str(row["id"])


def _manufacturing() -> Source:
    return ManufacturingSource(
        ManufacturingSourceConfig(equipment_count=1, line_count=0, product_count=0)
    )


def _retail() -> Source:
    return RetailSource(
        RetailSourceConfig(
            store_count=1, web_count=0, shop_count=0, customer_changes=False, product_count=5
        )
    )


@asynccontextmanager
async def _generator(kind: str, _: Path) -> AsyncIterator[Any]:
    make = _manufacturing if kind == "manufacturing" else _retail
    yield GeneratorHarness(kind, make, 1.0)


@asynccontextmanager
async def _ndjson(tmp: Path) -> AsyncIterator[Any]:
    yield NdjsonHarness(tmp)


@asynccontextmanager
async def _push(_: Path) -> AsyncIterator[Any]:
    async with httpx.AsyncClient(timeout=60) as http, anyio.create_task_group() as tg:
        yield PushHarness(http, tg)
        tg.cancel_scope.cancel()


HARNESSES: dict[str, HarnessFactory] = {
    "manufacturing": lambda tmp: _generator("manufacturing", tmp),
    "retail": lambda tmp: _generator("retail", tmp),
    "http_push": _push,
    "ndjson": _ndjson,
}


@pytest.fixture(params=list(HARNESSES), ids=list(HARNESSES))
def harness(request: pytest.FixtureRequest) -> HarnessFactory:
    factory: HarnessFactory = HARNESSES[request.param]
    return factory


class TestSourceContract(ContractSuite):
    """The contract over every kind in `HARNESSES`."""


@pytest.mark.parametrize("kind", KINDS)
def test_importing_never_pulls_in_snowflake_or_sinks(kind: str) -> None:
    check_imports_no_delivery_code(MODULES[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_kind_is_the_module_name_and_a_config_choice(kind: str) -> None:
    """`kind = "<name>"` in TOML selects the source defined in its module under `streamd.sources`."""
    module = importlib.import_module(MODULES[kind])
    configs = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, BaseModel) and c.__name__.endswith("SourceConfig")
    ]
    assert len(configs) == 1
    assert configs[0].model_fields["kind"].default == kind
    accepted = Config.model_json_schema()["$defs"]
    assert configs[0].__name__ in accepted
