"""MQTT source without a broker: topic → row mapping, ack ordering, Sparkplug B decoding."""

from __future__ import annotations

from typing import Any

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
from streamd.sources.mqtt.sparkplug import (
    DATATYPE_CODES,
    REBIRTH_METRIC,
    SparkplugDecoder,
    SparkplugError,
)
from streamd.sources.mqtt.sparkplug_b_pb2 import Payload


def spb(seq: int | None, metrics: list[dict[str, Any]], timestamp: int = 1000) -> bytes:
    p: Any = Payload(timestamp=timestamp)
    if seq is not None:
        p.seq = seq
    for m in metrics:
        metric = p.metrics.add()
        for k, v in m.items():
            setattr(metric, k, v)
    out: bytes = p.SerializeToString()
    return out


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


def test_sparkplug_birth_data_death() -> None:
    d = SparkplugDecoder()
    birth = spb(
        0,
        [
            {
                "name": "Temp",
                "alias": 1,
                "datatype": DATATYPE_CODES["Double"],
                "double_value": 20.5,
            },
            {"name": "Offset", "alias": 2, "datatype": DATATYPE_CODES["Int32"], "int_value": 1},
        ],
    )
    out = d.decode("spBv1.0/G/NBIRTH/E1", birth)
    assert out.rebirth is None
    assert [r["STATUS"] for r in out.rows] == ["ONLINE", None, None]
    assert out.rows[1]["METRIC"] == "Temp"
    assert out.rows[1]["VALUE"] == 20.5

    data = spb(1, [{"alias": 1, "double_value": 21.0}, {"alias": 2, "int_value": 2**32 - 5}])
    out = d.decode("spBv1.0/G/NDATA/E1", data)
    assert out.rebirth is None
    assert [(r["METRIC"], r["VALUE"], r["DATATYPE"]) for r in out.rows] == [
        ("Temp", 21.0, "Double"),
        ("Offset", -5, "Int32"),
    ]
    row = out.rows[0]
    assert (row["GROUP_ID"], row["EDGE_NODE_ID"], row["DEVICE_ID"]) == ("G", "E1", None)
    assert (row["MESSAGE_TYPE"], row["SEQ"], row["TIMESTAMP"]) == ("NDATA", 1, 1000)

    dbirth = spb(2, [{"name": "Speed", "alias": 7, "datatype": 10, "double_value": 1.0}])
    assert d.decode("spBv1.0/G/DBIRTH/E1/D1", dbirth).rebirth is None
    out = d.decode("spBv1.0/G/DDATA/E1/D1", spb(3, [{"alias": 7, "double_value": 2.0}]))
    assert out.rows[0]["DEVICE_ID"] == "D1"
    assert out.rows[0]["METRIC"] == "Speed"

    out = d.decode("spBv1.0/G/DDEATH/E1/D1", spb(4, []))
    assert [(r["MESSAGE_TYPE"], r["STATUS"]) for r in out.rows] == [("DDEATH", "OFFLINE")]
    death = spb(None, [{"name": "bdSeq", "datatype": 8, "long_value": 3}])
    out = d.decode("spBv1.0/G/NDEATH/E1", death)
    assert [(r["STATUS"], r["VALUE"]) for r in out.rows] == [("OFFLINE", 3)]


def test_seq_gap_asks_for_rebirth_once_and_wraps() -> None:
    now = [0.0]
    d = SparkplugDecoder(rebirth_interval_s=30, monotonic=lambda: now[0], wall_ms=lambda: 5)
    d.decode("spBv1.0/G/NBIRTH/E", spb(254, []))
    assert d.decode("spBv1.0/G/NDATA/E", spb(255, [])).rebirth is None
    assert d.decode("spBv1.0/G/NDATA/E", spb(0, [])).rebirth is None  # 255 → 0 wraps
    gap = d.decode("spBv1.0/G/NDATA/E", spb(5, [{"alias": 9, "long_value": 1}]))
    assert gap.rebirth is not None
    topic, body = gap.rebirth
    assert topic == "spBv1.0/G/NCMD/E"
    cmd: Any = Payload.FromString(body)
    assert [(m.name, m.boolean_value) for m in cmd.metrics] == [(REBIRTH_METRIC, True)]
    assert gap.rows[0]["METRIC"] is None  # unknown alias: kept, not dropped
    assert d.decode("spBv1.0/G/NDATA/E", spb(9, [])).rebirth is None  # throttled
    now[0] = 31.0
    assert d.decode("spBv1.0/G/NDATA/E", spb(20, [])).rebirth is not None
    d.decode("spBv1.0/G/NBIRTH/E", spb(0, []))
    assert d.decode("spBv1.0/G/NDATA/E", spb(1, [])).rebirth is None


def test_sparkplug_unknown_node_and_bad_input() -> None:
    d = SparkplugDecoder()
    assert d.decode("spBv1.0/G/NDATA/NEW", spb(7, [])).rebirth is not None
    assert d.decode("spBv1.0/G/NCMD/NEW", b"anything").rows == []
    with pytest.raises(SparkplugError):
        d.decode("spBv1.0/G/NDATA/E", b"\xff\xff\xff")
    with pytest.raises(SparkplugError):
        d.decode("other/G/NDATA/E", spb(0, []))
    with pytest.raises(SparkplugError):
        d.decode("spBv1.0/G/DDATA/E", spb(0, []))  # device message without a device
