"""Sparkplug B `Payload` as a protobuf message class, built at import from a descriptor.

The subset of Eclipse Tahu's `sparkplug_b.proto` (proto2, package `org.eclipse.tahu.protobuf`)
that streamd reads and writes: Payload{timestamp=1, metrics=2, seq=3, uuid=4, body=5} and
Metric{name=1, alias=2, timestamp=3, datatype=4, is_historical=5, is_transient=6, is_null=7,
oneof value {int_value=10, long_value=11, float_value=12, double_value=13, boolean_value=14,
string_value=15, bytes_value=16}}. Field numbers and types match the official schema, so payloads
from any Sparkplug B client parse; fields outside the subset (metadata, properties, dataset,
template) are kept as unknown fields and ignored. Built with the protobuf runtime instead of
`protoc` output so no generated code (and no protoc version coupling) lives in the repository.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_OPT = _F.LABEL_OPTIONAL


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(
        name="streamd_sparkplug_b.proto", package="org.eclipse.tahu.protobuf", syntax="proto2"
    )
    payload = f.message_type.add(name="Payload")
    payload.field.add(name="timestamp", number=1, label=_OPT, type=_F.TYPE_UINT64)
    payload.field.add(
        name="metrics",
        number=2,
        label=_F.LABEL_REPEATED,
        type=_F.TYPE_MESSAGE,
        type_name=".org.eclipse.tahu.protobuf.Payload.Metric",
    )
    payload.field.add(name="seq", number=3, label=_OPT, type=_F.TYPE_UINT64)
    payload.field.add(name="uuid", number=4, label=_OPT, type=_F.TYPE_STRING)
    payload.field.add(name="body", number=5, label=_OPT, type=_F.TYPE_BYTES)
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    for name, number, kind in (
        ("name", 1, _F.TYPE_STRING),
        ("alias", 2, _F.TYPE_UINT64),
        ("timestamp", 3, _F.TYPE_UINT64),
        ("datatype", 4, _F.TYPE_UINT32),
        ("is_historical", 5, _F.TYPE_BOOL),
        ("is_transient", 6, _F.TYPE_BOOL),
        ("is_null", 7, _F.TYPE_BOOL),
    ):
        metric.field.add(name=name, number=number, label=_OPT, type=kind)
    for name, number, kind in (
        ("int_value", 10, _F.TYPE_UINT32),
        ("long_value", 11, _F.TYPE_UINT64),
        ("float_value", 12, _F.TYPE_FLOAT),
        ("double_value", 13, _F.TYPE_DOUBLE),
        ("boolean_value", 14, _F.TYPE_BOOL),
        ("string_value", 15, _F.TYPE_STRING),
        ("bytes_value", 16, _F.TYPE_BYTES),
    ):
        metric.field.add(name=name, number=number, label=_OPT, type=kind, oneof_index=0)
    return f


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())

Payload: type[message.Message] = message_factory.GetMessageClass(
    _pool.FindMessageTypeByName("org.eclipse.tahu.protobuf.Payload")
)
"""`Payload()` / `Payload.FromString(data)`; fields as in the module docstring (typed `Any`)."""

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
}
DATATYPE_CODES: dict[str, int] = {v: k for k, v in DATATYPES.items()}
