"""MQTT source against a real Mosquitto broker on a free loopback port (see `conftest.py`)."""

from __future__ import annotations

import aiomqtt
import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from streamd.clock import SystemClock
from streamd.rows import Envelope
from streamd.sources.base import SourceContext
from streamd.sources.mqtt.source import MqttSource, MqttSourceConfig
from streamd.testing import MemorySequences, drain
from tests.helpers import DeadLetterRecorder, eventually, spb

from .conftest import Broker, Relay

pytestmark = pytest.mark.slow


def config(
    broker: Broker, client_id: str = "streamd-test", port: int | None = None
) -> MqttSourceConfig:
    return MqttSourceConfig.model_validate(
        {
            "port": port or broker.port,
            "client_id": client_id,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "subscriptions": [
                {
                    "topic": "$share/streamd/plants/+/+/telemetry",
                    "table": "DB.RAW.TELEMETRY",
                    "columns": {"+1": "PLANT", "+2": "LINE"},
                },
                {"topic": "spBv1.0/#", "table": "DB.RAW.SPARKPLUG", "format": "sparkplug_b"},
            ],
        }
    )


async def take(receive: MemoryObjectReceiveStream[Envelope], n: int) -> list[Envelope]:
    out = []
    with anyio.fail_after(15):
        for _ in range(n):
            out.append(await receive.receive())
    return out


async def observe_ncmd(
    broker: Broker, seen: list[str], *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    """Append the topics of NCMD messages (rebirth requests) to `seen` until cancelled."""
    async with aiomqtt.Client("127.0.0.1", broker.port) as client:
        await client.subscribe("spBv1.0/+/NCMD/#", qos=1)
        task_status.started()
        async for m in client.messages:
            seen.append(m.topic.value)


async def test_json_and_sparkplug_rows(broker: Broker) -> None:
    observer: list[str] = []
    dead = DeadLetterRecorder()
    source = MqttSource(config(broker), dead)
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    ctx = SourceContext(send, SystemClock(), MemorySequences())
    async with send, receive, anyio.create_task_group() as tg:
        await tg.start(observe_ncmd, broker, observer)
        await tg.start(source.run, ctx)
        await broker.publish(
            ("plants/p1/l2/telemetry", b'{"temp": 20.5}'),
            ("plants/p1/l3/telemetry", b"{not json"),
            ("plants/p2/l1/telemetry", b'[{"temp": 1}, {"temp": 2}]'),
            ("spBv1.0/G/NBIRTH/E", spb(0, [{"name": "T", "alias": 1, "datatype": 10}])),
            ("spBv1.0/G/NDATA/E", spb(1, [{"alias": 1, "double_value": 3.5}])),
            ("spBv1.0/G/NDATA/E", spb(7, [{"alias": 1, "double_value": 4.5}])),  # gap
        )
        envelopes = await take(receive, 7)
        for e in envelopes:
            assert e.ack is not None
            e.ack(1)
        await eventually(lambda: observer, within=10)  # appended by another task
        tg.cancel_scope.cancel()
    json_rows = [e.row for e in envelopes if e.table == "DB.RAW.TELEMETRY"]
    assert json_rows == [
        {"temp": 20.5, "PLANT": "p1", "LINE": "l2"},
        {"temp": 1, "PLANT": "p2", "LINE": "l1"},
        {"temp": 2, "PLANT": "p2", "LINE": "l1"},
    ]
    spark = [e.row for e in envelopes if e.table == "DB.RAW.SPARKPLUG"]
    assert [(r["MESSAGE_TYPE"], r["METRIC"], r["VALUE"]) for r in spark] == [
        ("NBIRTH", None, None),
        ("NBIRTH", "T", None),
        ("NDATA", "T", 3.5),
        ("NDATA", "T", 4.5),
    ]
    assert [(d["table"], d["rule"]) for d in dead.records] == [("DB.RAW.TELEMETRY", "invalid_json")]
    assert observer == ["spBv1.0/G/NCMD/E"]


async def run_until(
    broker: Broker, n: int, *, ack: bool, client_id: str = "redeliver"
) -> list[Envelope]:
    """Run a source until it has handed over `n` envelopes (acking them or not), then stop it."""
    source = MqttSource(config(broker, client_id))
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    ctx = SourceContext(send, SystemClock(), MemorySequences())
    async with send, receive, anyio.create_task_group() as tg:
        await tg.start(source.run, ctx)
        if n == 0:
            await anyio.sleep(0.5)
            envelopes = []
        else:
            envelopes = await take(receive, n)
        for e in envelopes:
            if ack and e.ack is not None:
                e.ack(1)
        await anyio.sleep(0.3)  # let the PUBACKs reach the broker
        tg.cancel_scope.cancel()
    return envelopes


async def test_unacked_messages_are_redelivered_after_reconnect(broker: Broker) -> None:
    await run_until(broker, 0, ack=False)  # creates the persistent session and subscriptions
    await broker.publish(("plants/p1/l1/telemetry", b'{"n": 1}'))
    first = await run_until(broker, 1, ack=False)
    assert [e.row["n"] for e in first] == [1]
    again = await run_until(broker, 1, ack=True)  # not acked before: the broker sends it again
    assert [e.row["n"] for e in again] == [1]
    await broker.publish(("plants/p1/l1/telemetry", b'{"n": 2}'))
    after = await run_until(broker, 1, ack=True)  # acked now: only the new message comes
    assert [e.row["n"] for e in after] == [2]


async def test_reconnects_and_resubscribes_after_broker_restart(broker: Broker) -> None:
    source = MqttSource(config(broker, "restart"))
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    ctx = SourceContext(send, SystemClock(), MemorySequences())
    async with send, receive, anyio.create_task_group() as tg:
        await tg.start(source.run, ctx)
        broker.stop()  # persistence false: the session and its subscriptions are gone
        await anyio.sleep(0.5)
        broker.start()
        await eventually(lambda: source.connects >= 2, within=10)
        await anyio.sleep(0.2)
        await broker.publish(("plants/p9/l9/telemetry", b'{"n": 9}'))
        (e,) = await take(receive, 1)
        assert e.row == {"n": 9, "PLANT": "p9", "LINE": "l9"}
        tg.cancel_scope.cancel()


async def test_redeliveries_after_a_dropped_connection_make_no_duplicate_rows(
    broker: Broker,
) -> None:
    """Rows handed over before a drop are not produced again; their PUBACKs go out after."""
    messages = [("plants/p1/l1/telemetry", f'{{"n": {i}}}'.encode()) for i in range(3)]
    async with anyio.create_task_group() as tg:
        relay = Relay(broker.port)
        port = await tg.start(relay.serve)
        source = MqttSource(config(broker, "dedupe", port))
        send, receive = anyio.create_memory_object_stream[Envelope](100)
        ctx = SourceContext(send, SystemClock(), MemorySequences())
        async with send, receive, anyio.create_task_group() as run:
            await run.start(source.run, ctx)
            await broker.publish(*messages)
            held = await take(receive, 3)  # handed to the pipeline, not durable yet
            relay.cut()
            # The broker resends all three on the new connection (DUP set).
            await eventually(lambda: source.duplicates >= 3, within=15)
            assert source.connects == 2
            assert drain(receive) == []  # recognised: no second copy of any row
            for e in held:
                assert e.ack is not None
                e.ack(1)  # durable now: the PUBACKs go out on the new connection
            await anyio.sleep(0.3)  # let the PUBACKs reach the broker
            run.cancel_scope.cancel()
        tg.cancel_scope.cancel()
    assert [e.row["n"] for e in held] == [0, 1, 2]
    # The broker got its acks: a new process on the same session is sent nothing old.
    await broker.publish(("plants/p1/l1/telemetry", b'{"n": 3}'))
    after = await run_until(broker, 1, ack=True, client_id="dedupe")
    assert [e.row["n"] for e in after] == [3]


async def test_stopping_stays_connected_until_handed_over_rows_are_acked(broker: Broker) -> None:
    """Rows the pipeline still spools after the stop get their PUBACKs: no resend on restart."""
    await run_until(broker, 0, ack=False, client_id="drain")  # creates the persistent session
    await broker.publish(*[("plants/p1/l1/telemetry", f'{{"n": {i}}}'.encode()) for i in range(5)])
    source = MqttSource(config(broker, "drain"))
    send, receive = anyio.create_memory_object_stream[Envelope](100)
    ctx = SourceContext(send, SystemClock(), MemorySequences())
    stopped = anyio.Event()

    async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with scope:
            await source.run(ctx, task_status=task_status)
        stopped.set()

    scope = anyio.CancelScope()
    async with send, receive, anyio.create_task_group() as tg:
        await tg.start(serve)
        held = await take(receive, 5)
        scope.cancel()
        await anyio.sleep(0.3)  # the stop is under way ...
        assert not stopped.is_set()  # ... and waits for the rows it handed over
        for e in held:
            assert e.ack is not None
            e.ack(1)  # the pipeline spools them after the stop began
        with anyio.fail_after(10):
            await stopped.wait()
    await broker.publish(("plants/p1/l1/telemetry", b'{"n": 5}'))
    after = await run_until(broker, 1, ack=True, client_id="drain")
    assert [e.row["n"] for e in after] == [5]  # none of the five came again
