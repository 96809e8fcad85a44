"""MQTT source without a broker: topic → row mapping and ack ordering."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streamd.sources.mqtt.source import (
    AckQueue,
    MqttSourceConfig,
    MqttSubscription,
    json_rows,
    topic_columns,
    topic_matches,
)


def test_topic_matching_and_shared_prefix() -> None:
    assert topic_matches("plants/+/+/telemetry", "plants/p1/l2/telemetry")
    assert not topic_matches("plants/+/+/telemetry", "plants/p1/telemetry")
    assert topic_matches("plants/#", "plants/p1/l2/x")
    assert topic_matches("plants/#", "plants")
    assert not topic_matches("#", "$SYS/broker/uptime")
    sub = MqttSubscription(topic="$share/g1/plants/+/+/telemetry", table="DB.S.T")
    assert sub.filter == "plants/+/+/telemetry"


def test_topic_segments_to_columns() -> None:
    sub = MqttSubscription(
        topic="$share/g/plants/+/lines/+/#",
        table="DB.S.T",
        columns={"+1": "PLANT", "+2": "LINE", "0": "ROOT", "#": "REST", "9": "MISSING"},
        topic_column="TOPIC",
    )
    row = topic_columns(sub, "plants/p1/lines/l7/a/b")
    assert row == {
        "PLANT": "p1",
        "LINE": "l7",
        "ROOT": "plants",
        "REST": "a/b",
        "MISSING": None,
        "TOPIC": "plants/p1/lines/l7/a/b",
    }


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        MqttSubscription(topic="a/b+/c", table="DB.S.T")
    with pytest.raises(ValidationError):
        MqttSubscription(topic="a/#/c", table="DB.S.T")
    with pytest.raises(ValidationError):
        MqttSubscription(topic="a/b", table="T")
    with pytest.raises(ValidationError):
        MqttSubscription(topic="a/b", table="DB.S.T", columns={"x": "C"})
    cfg = MqttSourceConfig.model_validate(
        {
            "client_id": "c",
            "password": "literal",
            "subscriptions": [
                {"topic": "a/#", "table": "DB.S.A"},
                {"topic": "spBv1.0/#", "table": "DB.S.B", "format": "sparkplug_b"},
            ],
        }
    )
    assert cfg.tables() == ["DB.S.A", "DB.S.B"]
    assert cfg.password is not None
    assert "literal" not in repr(cfg)


def test_json_rows() -> None:
    assert json_rows(b'{"a": 1}') == [{"a": 1}]
    assert json_rows(b'[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    for bad in (b"{nope", b"[1, 2]", b"3", b"[]"):
        with pytest.raises(ValueError):  # noqa: PT011 - orjson's error is a ValueError too
            json_rows(bad)


async def test_acks_go_out_in_arrival_order_once_rows_are_durable() -> None:
    sent: list[int] = []
    q = AckQueue(lambda mid, qos: sent.append(mid), [])
    first = q.add(1, 1, 2, "t", b"a")
    second = q.add(2, 1, 1, "t", b"b")
    q.row_done(second)
    assert sent == []  # 1 still waits for a row, so 2's PUBACK waits too
    q.row_done(first)
    assert sent == []
    q.row_done(first)
    assert sent == [1, 2]
    q.add(3, 1, 0, "t", b"c")  # a message with no rows (e.g. dead-lettered) is acked in its turn
    assert sent == [1, 2, 3]
    late = q.add(4, 1, 1, "t", b"d")
    assert q.close() == [late]  # the connection dropped: its message ids must never be acked
    q.row_done(late)
    assert sent == [1, 2, 3]
    assert q.unacked == 1


async def test_a_redelivery_is_acked_once_the_first_copy_is_durable_and_makes_no_rows() -> None:
    old_acks: list[int] = []
    old = AckQueue(lambda mid, qos: old_acks.append(mid), [])
    slow = old.add(7, 1, 2, "t/a", b"payload")
    old.row_done(slow)
    carried = old.close()
    new_acks: list[int] = []
    new = AckQueue(lambda mid, qos: new_acks.append(mid), carried)
    # Not a redelivery: DUP clear, or another packet id, topic or payload.
    assert not new.redelivered(7, 1, "t/a", b"payload", dup=False)
    assert not new.redelivered(8, 1, "t/a", b"payload", dup=True)
    assert not new.redelivered(7, 1, "t/b", b"payload", dup=True)
    assert not new.redelivered(7, 1, "t/a", b"other", dup=True)
    assert new.redelivered(7, 1, "t/a", b"payload", dup=True)
    assert not new.redelivered(7, 1, "t/a", b"payload", dup=True)  # matched once only
    assert new_acks == []  # the first copy's last row is not durable yet
    old.row_done(slow)  # the pipeline acks it late, through the queue it was created on
    assert new_acks == [7]
    assert old_acks == []
    assert new.duplicates == 1


async def test_a_topic_column_wins_over_a_payload_key_and_says_so_once() -> None:
    """`columns` maps a topic segment onto a name the payload also uses: the topic's value is
    stored, and the override is logged once per column, not silently and not per row."""
    import aiomqtt
    import anyio
    import orjson
    from structlog.testing import capture_logs

    from streamd.rows import Envelope
    from streamd.sources.base import SourceContext
    from streamd.sources.mqtt.source import MqttSource
    from streamd.testing import ManualClock, MemorySequences

    config = MqttSourceConfig.model_validate(
        {
            "name": "plant",
            "host": "127.0.0.1",
            "client_id": "t",
            "subscriptions": [
                {"topic": "plants/+/telemetry", "table": "D.S.T", "columns": {"+1": "SITE"}}
            ],
        }
    )
    source = MqttSource(config)
    send, receive = anyio.create_memory_object_stream[Envelope](10)
    ctx = SourceContext(send, ManualClock(), MemorySequences())
    acks = AckQueue(lambda mid, qos: None, [])
    with send, receive, capture_logs() as logs:
        for mid in (1, 2):
            payload = orjson.dumps({"SITE": "payload-site", "V": mid})
            message = aiomqtt.Message("plants/north/telemetry", payload, 1, False, mid, None)
            await source._handle(ctx, None, acks, message, False)  # type: ignore[arg-type]
        rows = [receive.receive_nowait().row for _ in range(2)]
    assert [r["SITE"] for r in rows] == ["north", "north"]
    warned = [e for e in logs if e["event"] == "mqtt_topic_column_overrides_payload"]
    assert len(warned) == 1
    assert (warned[0]["column"], warned[0]["payload_value"]) == ("SITE", "payload-site")
