"""Sparkplug B decoding: birth/data/death, sequence gaps and rebirth, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from streamd.sources.mqtt.sparkplug import (
    DATATYPE_CODES,
    REBIRTH_METRIC,
    SparkplugDecoder,
    SparkplugError,
)
from streamd.sources.mqtt.sparkplug_b_pb2 import Payload
from tests.helpers import spb


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
