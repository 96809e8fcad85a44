"""Sparkplug B messages → rows, with the per-edge-node state the protocol needs.

Topics are `spBv1.0/{group}/{type}/{edge_node}[/{device}]`. Every row has the columns
GROUP_ID, EDGE_NODE_ID, DEVICE_ID, MESSAGE_TYPE, METRIC, ALIAS, VALUE, DATATYPE, TIMESTAMP
(milliseconds since the epoch, the metric's own or else the payload's), SEQ and STATUS:

- NBIRTH / DBIRTH: one status row (STATUS = "ONLINE") and one row per metric; the births also
  build the alias → (name, datatype) tables of that edge node / device.
- NDATA / DDATA: one row per metric; metrics sent by alias get their name and datatype from the
  last birth. A metric whose alias no birth declared keeps METRIC = NULL (never dropped).
- NDEATH / DDEATH: one status row (STATUS = "OFFLINE"; VALUE = the bdSeq of an NDEATH).
- NCMD / DCMD / STATE: no rows (commands are not telemetry; our own rebirth requests are NCMDs).

`seq` (0–255, wrapping) is checked for every message of an edge node after its NBIRTH. A gap, or
data from an edge node whose birth this process has not seen (e.g. after a restart), asks the
node for a rebirth: `Decoded.rebirth` carries an NCMD `Node Control/Rebirth = true` to publish,
at most once per `rebirth_interval_s` per node until its NBIRTH arrives.
"""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from streamd.rows import Row
from streamd.sources.mqtt.sparkplug_b_pb2 import Payload

NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_NODE_TYPES = {"NBIRTH", "NDATA", "NDEATH", "NCMD"}
_DEVICE_TYPES = {"DBIRTH", "DDATA", "DDEATH", "DCMD"}
# Integer types by their width in bits and whether they are signed. Whichever of the unsigned
# `int_value` / `long_value` fields an encoder used, and however it widened a negative value
# (Tahu's reference adds 2**16 to a negative Int16; others sign-extend to 32 or 64 bits), the low
# `width` bits are the value: they are read back as the type's own width says.
_INT_WIDTHS: dict[int, tuple[int, bool]] = {
    1: (8, True),
    2: (16, True),
    3: (32, True),
    4: (64, True),
    5: (8, False),
    6: (16, False),
    7: (32, False),
    8: (64, False),
    13: (64, False),  # DateTime: milliseconds since the epoch
}
# Array types (Sparkplug B 3.0): little-endian packed values in `bytes_value`, as struct codes.
_ARRAY_CODES: dict[int, str] = {
    22: "b",
    23: "h",
    24: "i",
    25: "q",
    26: "B",
    27: "H",
    28: "I",
    29: "Q",
    30: "f",
    31: "d",
    34: "Q",  # DateTimeArray: milliseconds since the epoch
}
_STRING_ARRAY = 33

# Sparkplug B data types (the `datatype` field of a metric), as in the specification.
DATATYPES: dict[int, str] = {
    1: "Int8",
    2: "Int16",
    3: "Int32",
    4: "Int64",
    5: "UInt8",
    6: "UInt16",
    7: "UInt32",
    8: "UInt64",
    9: "Float",
    10: "Double",
    11: "Boolean",
    12: "String",
    13: "DateTime",
    14: "Text",
    15: "UUID",
    16: "DataSet",
    17: "Bytes",
    18: "File",
    19: "Template",
    22: "Int8Array",
    23: "Int16Array",
    24: "Int32Array",
    25: "Int64Array",
    26: "UInt8Array",
    27: "UInt16Array",
    28: "UInt32Array",
    29: "UInt64Array",
    30: "FloatArray",
    31: "DoubleArray",
    32: "BooleanArray",
    33: "StringArray",
    34: "DateTimeArray",
}
DATATYPE_CODES: dict[str, int] = {v: k for k, v in DATATYPES.items()}

MetricValue = int | float | str | list[int] | list[float] | list[str] | None
"""A metric's value in a row (`metric_value`): bytes become base64 text, NULL becomes None."""


class SparkplugError(ValueError):
    """A message that is not valid Sparkplug B (topic or payload); goes to the dead letters."""


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one message turns into: rows, and possibly a rebirth request to publish."""

    rows: list[Row]
    rebirth: tuple[str, bytes] | None = None
    """(topic, payload) of an NCMD asking the edge node to rebirth, when one is due."""


@dataclass(slots=True)
class _Node:
    aliases: dict[int, tuple[str, int]] = field(default_factory=dict)
    devices: dict[str, dict[int, tuple[str, int]]] = field(default_factory=dict)
    last_seq: int | None = None
    """None until an NBIRTH is seen (and again after an NDEATH)."""
    rebirth_at: float | None = None
    """When a rebirth was last requested; cleared by the NBIRTH."""


def parse_topic(topic: str) -> tuple[str, str, str, str | None]:
    """(group, message type, edge node, device) of a Sparkplug B topic."""
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != NAMESPACE:
        raise SparkplugError(f"topic {topic!r} is not spBv1.0/group/TYPE/edge_node[/device]")
    group, kind, edge = parts[1], parts[2], parts[3]
    if kind in _NODE_TYPES and len(parts) == 4:
        return group, kind, edge, None
    if kind in _DEVICE_TYPES and len(parts) == 5:
        return group, kind, edge, parts[4]
    raise SparkplugError(f"topic {topic!r}: unknown message type {kind!r} or wrong segment count")


def rebirth_request(group: str, edge: str, now_ms: int) -> tuple[str, bytes]:
    """The NCMD that asks edge node `group/edge` to publish its births again."""
    p = Payload(timestamp=now_ms)
    m = p.metrics.add()
    m.name = REBIRTH_METRIC
    m.datatype = DATATYPE_CODES["Boolean"]
    m.boolean_value = True
    return f"{NAMESPACE}/{group}/NCMD/{edge}", p.SerializeToString()


def metric_value(metric: Payload.Metric, datatype: int) -> MetricValue:
    """The Python value of a metric: integers by their type's width, arrays as lists, bytes as base64.

    Raises SparkplugError for an array whose byte length is not a whole number of elements.
    """
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    if which is None:
        return None
    if which in ("int_value", "long_value"):
        value: int = metric.int_value if which == "int_value" else metric.long_value
        width = _INT_WIDTHS.get(datatype)
        if width is None:
            return value
        bits, signed = width
        value &= (1 << bits) - 1
        return value - (1 << bits) if signed and value >= 1 << (bits - 1) else value
    if which == "bytes_value":
        return _bytes_value(metric.bytes_value, datatype)
    other: float | bool | str = getattr(metric, which)
    return other


def _bytes_value(data: bytes, datatype: int) -> str | list[int] | list[float] | list[str]:
    code = _ARRAY_CODES.get(datatype)
    if code is not None:
        size = struct.calcsize(code)
        if len(data) % size:
            name = DATATYPES[datatype]
            raise SparkplugError(
                f"{name} of {len(data)} bytes is not a whole number of {size}-byte values"
            )
        values: list[int] | list[float] = list(struct.unpack(f"<{len(data) // size}{code}", data))
        return values
    if datatype == _STRING_ARRAY:
        # NUL-terminated UTF-8 strings, one after another.
        try:
            return [s.decode("utf-8") for s in data.split(b"\0")[:-1]] if data else []
        except UnicodeDecodeError as exc:
            raise SparkplugError(f"StringArray is not UTF-8: {exc}") from None
    return base64.b64encode(data).decode("ascii")


class SparkplugDecoder:
    """Turns Sparkplug B messages into rows; keeps alias tables and `seq` per edge node."""

    def __init__(
        self,
        *,
        rebirth_interval_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self._nodes: dict[tuple[str, str], _Node] = {}
        self._interval = rebirth_interval_s
        self._monotonic = monotonic
        self._wall_ms = wall_ms

    def decode(self, topic: str, data: bytes) -> Decoded:
        """Rows of one message; raises `SparkplugError` for a bad topic or payload."""
        group, kind, edge, device = parse_topic(topic)
        if kind in ("NCMD", "DCMD"):
            return Decoded([])
        try:
            payload = Payload.FromString(data)
        except DecodeError as exc:
            raise SparkplugError(f"payload is not a Sparkplug B protobuf: {exc}") from None
        node = self._nodes.setdefault((group, edge), _Node())
        seq = int(payload.seq) if payload.HasField("seq") else None
        base = {
            "GROUP_ID": group,
            "EDGE_NODE_ID": edge,
            "DEVICE_ID": device,
            "MESSAGE_TYPE": kind,
            "SEQ": seq,
        }
        stamp = int(payload.timestamp) if payload.HasField("timestamp") else None
        if kind == "NDEATH":
            bd_seq = next((metric_value(m, 8) for m in payload.metrics if m.name == "bdSeq"), None)
            node.last_seq = None
            return Decoded([self._status(base, "OFFLINE", stamp, bd_seq)])
        rebirth = self._check_seq(node, group, edge, kind, seq)
        if kind == "NBIRTH":
            node.aliases = self._births(payload)
            node.devices.clear()
        elif kind == "DBIRTH":
            assert device is not None
            node.devices[device] = self._births(payload)
        aliases = node.aliases if device is None else node.devices.get(device, {})
        if kind == "DDEATH":
            return Decoded([self._status(base, "OFFLINE", stamp, None)], rebirth)
        rows = [self._status(base, "ONLINE", stamp, None)] if kind.endswith("BIRTH") else []
        for m in payload.metrics:
            alias = int(m.alias) if m.HasField("alias") else None
            name: str | None = m.name if m.HasField("name") else None
            datatype = int(m.datatype) if m.HasField("datatype") else 0
            if alias is not None and alias in aliases:
                known_name, known_type = aliases[alias]
                name = name or known_name
                datatype = datatype or known_type
            rows.append(
                base
                | {
                    "METRIC": name,
                    "ALIAS": alias,
                    "VALUE": metric_value(m, datatype),
                    "DATATYPE": DATATYPES.get(datatype),
                    "TIMESTAMP": int(m.timestamp) if m.HasField("timestamp") else stamp,
                    "STATUS": None,
                }
            )
        return Decoded(rows, rebirth)

    def _check_seq(
        self, node: _Node, group: str, edge: str, kind: str, seq: int | None
    ) -> tuple[str, bytes] | None:
        if kind == "NBIRTH":
            node.last_seq = seq if seq is not None else 0
            node.rebirth_at = None
            return None
        expected = None if node.last_seq is None else (node.last_seq + 1) % 256
        if seq is not None and node.last_seq is not None:
            node.last_seq = seq
        if expected is not None and seq == expected:
            return None
        # A gap, a missing seq, or no birth seen yet: the alias tables can't be trusted.
        now = self._monotonic()
        if node.rebirth_at is not None and now - node.rebirth_at < self._interval:
            return None
        node.rebirth_at = now
        return rebirth_request(group, edge, self._wall_ms())

    @staticmethod
    def _births(payload: Payload) -> dict[int, tuple[str, int]]:
        return {
            int(m.alias): (m.name, int(m.datatype))
            for m in payload.metrics
            if m.HasField("alias") and m.HasField("name")
        }

    @staticmethod
    def _status(base: Row, status: str, stamp: int | None, value: MetricValue) -> Row:
        return base | {
            "METRIC": None,
            "ALIAS": None,
            "VALUE": value,
            "DATATYPE": None,
            "TIMESTAMP": stamp,
            "STATUS": status,
        }
