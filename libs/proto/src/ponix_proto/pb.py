"""The hot-path envelope: Google ``protobuf`` classes (upb, C) generated from the same ``.proto``.

    from ponix_proto import pb
    env = pb.ProcessedEnvelope.FromString(raw)            # ~1 µs; raises pb.DecodeError
    row_data = pb.struct_to_dict(env.data)                # faster than json_format.MessageToDict
    occurred_at = env.occurred_at.ToDatetime(tzinfo=UTC)  # aware datetime, nanos truncated to µs

Use :class:`ponix_proto.ProcessedEnvelope` (betterproto2) everywhere speed does not matter: it
builds a row ~20x slower. The two agree byte for byte (``tests/unit/proto``).

Presence: a message field is ``HasField("occurred_at")``; reading an absent one gives the default
(epoch 0 / empty Struct), never ``None``.

:data:`RawDataEnvelope` is the same envelope, parsed with ``data``'s map values left as their
wire bytes (``env.data.fields``: ``str`` to the ``google.protobuf.Value`` bytes). The ingester
writes the JSON of ``data`` from those bytes: upb builds no message object per value, which
costs more than the rest of the decoding. Its class is made at import from
:data:`DESCRIPTOR`, so it cannot drift from the ``.proto``.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import api_implementation
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import NULL_VALUE, ListValue, NullValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

from ponix_proto._generated.pb2.ponix.envelope.v1.envelope_pb2 import DESCRIPTOR, ProcessedEnvelope

__all__ = (
    "DESCRIPTOR",
    "NULL_VALUE",
    "DecodeError",
    "JSONValue",
    "ListValue",
    "NullValue",
    "ProcessedEnvelope",
    "RawDataEnvelope",
    "Struct",
    "Timestamp",
    "Value",
    "implementation",
    "struct_to_dict",
    "value_to_python",
)

JSONValue: TypeAlias = "bool | float | str | list[JSONValue] | dict[str, JSONValue] | None"


def implementation() -> str:
    """The protobuf backend in use: ``"upb"`` is the fast one; ``"python"`` means ~50x slower."""
    return api_implementation.Type()


def value_to_python(value: Value) -> JSONValue:
    """One ``google.protobuf.Value`` as plain Python, like ``json_format.MessageToDict`` does it.

    Numbers come back as ``float`` (the wire type is double, so ``3`` arrives as ``3.0``); a
    ``Value`` with no kind set is ``None``. Raises ``ValueError`` for NaN and infinities, which
    have no JSON form.
    """
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if not math.isfinite(number):
            raise ValueError(f"{number} in a Struct has no JSON form")
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(item) for item in value.list_value.values]
    return None  # null_value, or no kind at all


def struct_to_dict(struct: Struct) -> dict[str, JSONValue]:
    """A ``google.protobuf.Struct`` as a ``dict``, equal to ``json_format.MessageToDict(struct)``.

    About 1.5x faster than ``MessageToDict`` per row (a direct walk, no reflection), see
    ``scripts/bench_proto_decode.py``.
    """
    return {key: value_to_python(item) for key, item in struct.fields.items()}


def _raw_data_envelope() -> Any:
    """``ProcessedEnvelope`` with ``data`` as ``RawStruct { map<string, bytes> fields = 1; }``:
    the wire format of a Struct whose values are read as bytes (a map entry's value is a
    length-delimited field either way). In a pool of its own, under its own package."""
    package = "ponix.envelope.v1.raw"
    proto = descriptor_pb2.FileDescriptorProto()
    DESCRIPTOR.CopyToProto(proto)
    proto.name = "ponix/envelope/v1/raw_data_envelope.proto"
    proto.package = package
    envelope = next(m for m in proto.message_type if m.name == "ProcessedEnvelope")
    del proto.message_type[:]
    added = proto.message_type.add()
    added.CopyFrom(envelope)
    for field in added.field:
        if field.name == "data":
            field.type_name = f".{package}.RawStruct"
    raw = proto.message_type.add(name="RawStruct")
    entry = raw.nested_type.add(name="FieldsEntry")
    entry.options.map_entry = True
    field_proto = descriptor_pb2.FieldDescriptorProto
    optional = field_proto.LABEL_OPTIONAL
    entry.field.add(name="key", number=1, label=optional, type=field_proto.TYPE_STRING)
    entry.field.add(name="value", number=2, label=optional, type=field_proto.TYPE_BYTES)
    raw.field.add(
        name="fields",
        number=1,
        label=field_proto.LABEL_REPEATED,
        type=field_proto.TYPE_MESSAGE,
        type_name=f".{package}.RawStruct.FieldsEntry",
    )
    pool = descriptor_pool.DescriptorPool()
    for dependency in (Struct.DESCRIPTOR.file, Timestamp.DESCRIPTOR.file):
        dependency_proto = descriptor_pb2.FileDescriptorProto()
        dependency.CopyToProto(dependency_proto)
        pool.Add(dependency_proto)
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{package}.ProcessedEnvelope")
    )


RawDataEnvelope: Any = _raw_data_envelope()
"""``ProcessedEnvelope`` with ``data.fields`` mapping each key to its Value's wire bytes."""
