"""The hot-path envelope: Google ``protobuf`` classes (upb, C) generated from the same ``.proto``.

    from ponix_proto import pb
    env = pb.ProcessedEnvelope.FromString(raw)            # ~1 µs; raises pb.DecodeError
    row_data = pb.struct_to_dict(env.data)                # faster than json_format.MessageToDict
    occurred_at = env.occurred_at.ToDatetime(tzinfo=UTC)  # aware datetime, nanos truncated to µs

Use :class:`ponix_proto.ProcessedEnvelope` (betterproto2) everywhere speed does not matter: it
builds a row ~20x slower. The two agree byte for byte (``tests/unit/proto``).

Presence: a message field is ``HasField("occurred_at")``; reading an absent one gives the default
(epoch 0 / empty Struct), never ``None``.

:data:`RawDataEnvelope` is the same envelope, parsed with each of ``data``'s map entries left
as its wire bytes (``env.data.fields``: a list of ``bytes``, each a key and its
``google.protobuf.Value``). The ingester writes the JSON of ``data`` from those bytes: iterating
upb's map and building a message per value cost more than the rest of the decoding. Its class is
made at import from :data:`DESCRIPTOR`, so it cannot drift from the ``.proto``.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
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
    "varint",
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


def varint(value: int) -> bytes:
    """A non-negative integer as protobuf's base-128 varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tagged(number: int, payload: bytes | str | int) -> bytes:
    """One field of a descriptor message: an integer as a varint, text and bytes delimited."""
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def _raw_data_envelope() -> Any:
    """``ProcessedEnvelope`` with ``data`` as ``RawStruct { repeated bytes fields = 1; }``: a
    Struct's wire format (its map entries are field 1) with each entry left as its bytes. In a
    pool of its own, under its own package.

    The ``FileDescriptorProto`` is written here, field by field from ``ProcessedEnvelope``'s
    descriptor: importing ``descriptor_pb2`` to build it would add 4.5 MiB to every process.
    Its numbers: FileDescriptorProto name 1, package 2, dependency 3, message_type 4, syntax
    12; DescriptorProto name 1, field 2; FieldDescriptorProto name 1, number 3, label 4,
    type 5, type_name 6, json_name 10.
    """
    package = "ponix.envelope.v1.raw"
    optional, repeated = FieldDescriptor.LABEL_OPTIONAL, FieldDescriptor.LABEL_REPEATED
    fields = b""
    for field in ProcessedEnvelope.DESCRIPTOR.fields:
        described = (
            _tagged(1, field.name)
            + _tagged(3, field.number)
            + _tagged(4, repeated if field.is_repeated else optional)
        )
        if field.name == "data":
            described += _tagged(5, FieldDescriptor.TYPE_MESSAGE)
            described += _tagged(6, f".{package}.RawStruct")
        elif field.message_type is not None:
            described += _tagged(5, field.type) + _tagged(6, "." + field.message_type.full_name)
        else:
            described += _tagged(5, field.type)
        fields += _tagged(2, described + _tagged(10, field.json_name))
    raw_struct = _tagged(1, "RawStruct") + _tagged(
        2,
        _tagged(1, "fields")
        + _tagged(3, 1)
        + _tagged(4, repeated)
        + _tagged(5, FieldDescriptor.TYPE_BYTES)
        + _tagged(10, "fields"),
    )
    dependency = Timestamp.DESCRIPTOR.file
    serialized = (
        _tagged(1, "ponix/envelope/v1/raw_data_envelope.proto")
        + _tagged(2, package)
        + _tagged(3, dependency.name)
        + _tagged(4, _tagged(1, "ProcessedEnvelope") + fields)
        + _tagged(4, raw_struct)
        + _tagged(12, "proto3")
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(dependency.serialized_pb)
    pool.AddSerializedFile(serialized)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"{package}.ProcessedEnvelope")
    )


RawDataEnvelope: Any = _raw_data_envelope()
"""``ProcessedEnvelope`` with ``data.fields`` the wire bytes of each of the Struct's map entries
(key and Value), in the order the envelope carries them."""
