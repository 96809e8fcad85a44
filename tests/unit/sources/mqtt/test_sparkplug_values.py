"""Metric values by the Sparkplug B type's width, as other implementations encode them.

Eclipse Tahu's reference encoder stores a negative Int8/Int16 in the uint32 `int_value` as
`value + 2**width`; others sign-extend to 32 bits (or put integers in `long_value`). All of them
must read back as the same number.
"""

from __future__ import annotations

import struct

import pytest

from streamd.sources.mqtt.sparkplug import (
    DATATYPE_CODES,
    SparkplugDecoder,
    SparkplugError,
    metric_value,
)
from streamd.sources.mqtt.sparkplug_b_pb2 import Payload


def _metric(datatype: str, **value: object) -> Payload.Metric:
    m = Payload.Metric(name="m", datatype=DATATYPE_CODES[datatype])
    for field, v in value.items():
        setattr(m, field, v)
    return m


@pytest.mark.parametrize(
    ("datatype", "value", "width"),
    [
        ("Int8", -1, 8),
        ("Int8", -128, 8),
        ("Int8", 127, 8),
        ("Int16", -12, 16),
        ("Int16", -32768, 16),
        ("Int16", 32767, 16),
        ("Int32", -2147483648, 32),
        ("Int32", -5, 32),
    ],
)
def test_signed_int_value_read_at_its_width_however_it_was_widened(
    datatype: str, value: int, width: int
) -> None:
    tahu = value % (1 << width)  # the reference implementation: value + 2**width
    sign_extended = value % (1 << 32)
    for encoded in {tahu, sign_extended}:
        assert metric_value(_metric(datatype, int_value=encoded), DATATYPE_CODES[datatype]) == value
    # Some encoders put every integer in the uint64 field.
    wide = value % (1 << 64)
    assert metric_value(_metric(datatype, long_value=wide), DATATYPE_CODES[datatype]) == value


@pytest.mark.parametrize(
    ("datatype", "field", "encoded", "expected"),
    [
        ("Int64", "long_value", (1 << 64) - 7, -7),
        ("Int64", "long_value", 1 << 62, 1 << 62),
        ("UInt8", "int_value", 255, 255),
        ("UInt16", "int_value", 65535, 65535),
        ("UInt32", "int_value", (1 << 32) - 1, (1 << 32) - 1),
        ("UInt64", "long_value", (1 << 64) - 1, (1 << 64) - 1),
        ("UInt64", "long_value", 1 << 63, 1 << 63),
        ("DateTime", "long_value", 1_765_000_000_000, 1_765_000_000_000),
    ],
)
def test_wide_and_unsigned_values_are_exact(
    datatype: str, field: str, encoded: int, expected: int
) -> None:
    m = _metric(datatype, **{field: encoded})
    assert metric_value(m, DATATYPE_CODES[datatype]) == expected


@pytest.mark.parametrize(
    ("datatype", "code", "values"),
    [
        ("Int8Array", "b", [-23, 123, -128]),
        ("Int16Array", "h", [-32768, 1, 32767]),
        ("Int32Array", "i", [123456789, -987654321]),
        ("Int64Array", "q", [-(1 << 63), 1 << 40]),
        ("UInt8Array", "B", [0, 255]),
        ("UInt16Array", "H", [65535]),
        ("UInt32Array", "I", [(1 << 32) - 1]),
        ("UInt64Array", "Q", [(1 << 64) - 1, 0]),
        ("DoubleArray", "d", [1.5, -2.25]),
        ("FloatArray", "f", [0.5, -4.0]),
        ("DateTimeArray", "Q", [1_765_000_000_000]),
    ],
)
def test_arrays_are_little_endian_packed_lists(
    datatype: str, code: str, values: list[float]
) -> None:
    packed = struct.pack(f"<{len(values)}{code}", *values)
    assert metric_value(_metric(datatype, bytes_value=packed), DATATYPE_CODES[datatype]) == values


def test_string_array_is_nul_terminated_utf8() -> None:
    m = _metric("StringArray", bytes_value=b"ABC\0Hello\0\0")
    assert metric_value(m, DATATYPE_CODES["StringArray"]) == ["ABC", "Hello", ""]


def test_a_torn_array_is_a_sparkplug_error_not_a_wrong_number() -> None:
    with pytest.raises(SparkplugError, match="Int32Array of 6 bytes"):
        metric_value(_metric("Int32Array", bytes_value=b"\x01" * 6), DATATYPE_CODES["Int32Array"])


def test_birth_and_alias_only_data_keep_negative_int16() -> None:
    """The case seen in the field: a DBIRTH `Level` of -12 and alias-only DDATA of -32768."""
    decoder = SparkplugDecoder(rebirth_interval_s=60)
    nbirth = Payload(timestamp=1, seq=0)
    decoder.decode("spBv1.0/plant/NBIRTH/edge1", nbirth.SerializeToString())
    dbirth = Payload(timestamp=2, seq=1)
    m = dbirth.metrics.add(name="Level", alias=7, datatype=DATATYPE_CODES["Int16"])
    m.int_value = -12 + (1 << 16)
    rows = decoder.decode("spBv1.0/plant/DBIRTH/edge1/tank", dbirth.SerializeToString()).rows
    assert [r["VALUE"] for r in rows if r["METRIC"] == "Level"] == [-12]
    ddata = Payload(timestamp=3, seq=2)
    d = ddata.metrics.add(alias=7)
    d.int_value = -32768 + (1 << 16)
    rows = decoder.decode("spBv1.0/plant/DDATA/edge1/tank", ddata.SerializeToString()).rows
    assert [(r["METRIC"], r["VALUE"], r["DATATYPE"]) for r in rows] == [("Level", -32768, "Int16")]
