"""The public surface of ponix_proto: pinned, typed where it matters, upb on the hot path."""

from __future__ import annotations

import dataclasses

import betterproto2

import ponix_proto
from ponix_proto import pb


def test_public_api_is_pinned() -> None:
    assert ponix_proto.__all__ == (
        "ENVELOPE_ID_NAMESPACE",
        "MSG_ID_HEADER",
        "ProcessedEnvelope",
        "Struct",
        "deterministic_envelope_id",
        "envelope_id_timestamp",
        "new_envelope_id",
        "parse_envelope_id",
        "pb",
    )
    for name in ponix_proto.__all__:
        assert getattr(ponix_proto, name) is not None


def test_hot_path_api_is_pinned() -> None:
    assert pb.__all__ == (
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
    for name in pb.__all__:
        assert hasattr(pb, name)


def test_hot_path_runs_on_upb() -> None:
    # The pure-Python fallback decodes ~50x slower: the ingester's figures assume upb.
    assert pb.implementation() == "upb"


def test_processed_envelope_is_the_betterproto2_dataclass() -> None:
    env = ponix_proto.ProcessedEnvelope
    assert issubclass(env, betterproto2.Message)
    assert [f.name for f in dataclasses.fields(env)] == [
        "end_device_id",
        "occurred_at",
        "data",
        "processed_at",
        "organization_id",
        "id",
    ]
    assert issubclass(ponix_proto.Struct, betterproto2.Message)


def test_both_runtimes_describe_the_same_message() -> None:
    assert pb.ProcessedEnvelope.DESCRIPTOR.full_name == "ponix.envelope.v1.ProcessedEnvelope"
    assert pb.DESCRIPTOR.name == "ponix/envelope/v1/envelope.proto"
    assert [f.name for f in pb.ProcessedEnvelope.DESCRIPTOR.fields] == [
        f.name for f in dataclasses.fields(ponix_proto.ProcessedEnvelope)
    ]


def test_varint_is_protobufs_base_128_encoding() -> None:
    assert pb.varint(0) == b"\x00"
    assert pb.varint(127) == b"\x7f"
    assert pb.varint(300) == b"\xac\x02"
    # upb reads it back as a length: a Value's string of 300 bytes behind its tag.
    text = "x" * 300
    assert pb.Value.FromString(b"\x1a" + pb.varint(300) + text.encode()).string_value == text
