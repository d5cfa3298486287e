"""The envelope on the wire: betterproto2 and upb agree byte for byte, and seed bytes decode."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ponix_proto import ProcessedEnvelope, Struct, pb

OCCURRED = datetime(2026, 11, 23, 8, 59, 1, 123456, tzinfo=UTC)
PROCESSED = datetime(2026, 11, 23, 8, 59, 2, 654321, tzinfo=UTC)
ENVELOPE_ID = "019ab05c-4f2b-7d8e-9a3b-2c4d5e6f7a8b"
DATA: dict[str, Any] = {
    "temperature": 21.5,
    "count": 3,
    "ok": True,
    "door_open": False,
    "nothing": None,
    "label": "héllo ✓",
    "nested": {"a": {"b": [1, "x", None, {"c": False}, [], {}]}, "empty": {}},
    "list": [0.25, -7, True, "s", None, [1, [2]]],
}


def as_json(value: Any) -> Any:
    """What a Struct gives back: numbers are doubles, so ints come back as floats."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return {k: as_json(v) for k, v in value.items()}


def sorted_keys(value: Any) -> Any:
    """The same data with every object's keys sorted (upb's deterministic map order)."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def bp2_envelope(
    data: dict[str, Any] | None = DATA,
    occurred_at: datetime | None = OCCURRED,
    processed_at: datetime | None = PROCESSED,
    envelope_id: str = ENVELOPE_ID,
) -> ProcessedEnvelope:
    return ProcessedEnvelope(
        end_device_id="sensor-0042",
        occurred_at=occurred_at,
        data=None if data is None else Struct.from_dict(sorted_keys(data)),
        processed_at=processed_at,
        organization_id="org-7f3c",
        id=envelope_id,
    )


def upb_envelope(
    data: dict[str, Any] | None = DATA,
    occurred_at: datetime | None = OCCURRED,
    processed_at: datetime | None = PROCESSED,
    envelope_id: str = ENVELOPE_ID,
) -> pb.ProcessedEnvelope:
    env = pb.ProcessedEnvelope(
        end_device_id="sensor-0042", organization_id="org-7f3c", id=envelope_id
    )
    if occurred_at is not None:
        env.occurred_at.FromDatetime(occurred_at)
    if processed_at is not None:
        env.processed_at.FromDatetime(processed_at)
    if data is not None:
        env.data.SetInParent()  # update({}) alone would leave an empty Struct absent
        env.data.update(data)
    return env


# --- both directions, every field ------------------------------------------------------------


def test_betterproto2_bytes_decode_in_upb_with_every_field() -> None:
    raw = bytes(bp2_envelope())

    env = pb.ProcessedEnvelope.FromString(raw)

    assert env.end_device_id == "sensor-0042"
    assert env.organization_id == "org-7f3c"
    assert env.id == ENVELOPE_ID
    assert env.occurred_at.ToDatetime(tzinfo=UTC) == OCCURRED
    assert env.processed_at.ToDatetime(tzinfo=UTC) == PROCESSED
    assert env.occurred_at.nanos == 123456000
    assert pb.struct_to_dict(env.data) == as_json(DATA)
    assert json_format.MessageToDict(env.data) == as_json(DATA)


def test_upb_bytes_decode_in_betterproto2_with_every_field() -> None:
    raw = upb_envelope().SerializeToString()

    env = ProcessedEnvelope.parse(raw)

    assert env.end_device_id == "sensor-0042"
    assert env.organization_id == "org-7f3c"
    assert env.id == ENVELOPE_ID
    assert env.occurred_at == OCCURRED
    assert env.processed_at == PROCESSED
    assert env.occurred_at is not None
    assert env.occurred_at.tzinfo == UTC
    assert env.data is not None
    assert env.data.to_dict() == as_json(DATA)


def test_both_runtimes_write_identical_bytes() -> None:
    # betterproto2 writes map entries in dict order, upb (deterministic) in key order: with
    # sorted keys (none a prefix of a sibling, see below) the encodings are the same, byte for byte.
    bp2_raw = bytes(bp2_envelope())
    upb_raw = upb_envelope().SerializeToString(deterministic=True)

    assert bp2_raw == upb_raw
    assert bytes(ProcessedEnvelope.parse(upb_raw)) == upb_raw
    assert pb.ProcessedEnvelope.FromString(bp2_raw).SerializeToString(deterministic=True) == bp2_raw


def test_wire_format_is_pinned() -> None:
    # A field renumbered or retyped in the .proto changes these bytes: such a change breaks
    # every producer and stored message, so it must never happen (see envelope.proto).
    env = ProcessedEnvelope(
        end_device_id="d",
        occurred_at=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        data=Struct.from_dict({"t": 1.5, "s": "x"}),
        processed_at=datetime(1970, 1, 1, tzinfo=UTC),
        organization_id="o",
        id="i",
    )
    assert bytes(env).hex() == (
        "0a0164"  # 1: end_device_id "d"
        "1209"
        "08a5facdac06"
        "10f02e"  # 2: occurred_at {seconds 1704164645, nanos 6000}
        "1a1a"  # 3: data, a Struct of 26 bytes:
        "0a0e"
        "0a0174"
        "1209"
        "11000000000000f83f"  # fields {"t": Value{number 1.5}}
        "0a08"
        "0a0173"
        "1203"
        "1a0178"  # fields {"s": Value{string "x"}}
        "2200"  # 4: processed_at, present, at the epoch
        "2a016f"  # 5: organization_id "o"
        "320169"  # 6: id "i"
    )


def test_absent_fields_stay_absent() -> None:
    raw = bytes(ProcessedEnvelope())
    assert raw == b""

    bp2 = ProcessedEnvelope.parse(raw)
    assert bp2.occurred_at is None
    assert bp2.processed_at is None
    assert bp2.data is None
    assert bp2.id == ""

    upb = pb.ProcessedEnvelope.FromString(raw)
    assert not upb.HasField("occurred_at")
    assert not upb.HasField("data")
    assert pb.struct_to_dict(upb.data) == {}


def test_an_empty_struct_and_the_epoch_are_present_not_absent() -> None:
    raw = bytes(bp2_envelope(data={}, occurred_at=datetime(1970, 1, 1, tzinfo=UTC)))

    upb = pb.ProcessedEnvelope.FromString(raw)
    assert upb.HasField("data")
    assert upb.HasField("occurred_at")
    bp2 = ProcessedEnvelope.parse(raw)
    assert bp2.data is not None
    assert bp2.data.to_dict() == {}
    assert bp2.occurred_at == datetime(1970, 1, 1, tzinfo=UTC)


# --- timestamps -------------------------------------------------------------------------------


def test_betterproto2_timestamps_are_utc_aware_and_convert_other_zones() -> None:
    plus_two = timezone(timedelta(hours=2))
    raw = bytes(bp2_envelope(occurred_at=datetime(2024, 6, 1, 12, 0, tzinfo=plus_two)))

    env = ProcessedEnvelope.parse(raw)

    assert env.occurred_at == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert env.occurred_at is not None
    assert env.occurred_at.utcoffset() == timedelta(0)
    assert pb.ProcessedEnvelope.FromString(raw).occurred_at.seconds == 1717236000


def test_betterproto2_rejects_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone aware"):
        bytes(bp2_envelope(occurred_at=datetime(2024, 1, 1)))  # noqa: DTZ001


def test_nanoseconds_survive_upb_but_betterproto2_truncates_to_microseconds() -> None:
    env = upb_envelope()
    env.occurred_at.FromNanoseconds(1_700_000_000_123_456_789)
    raw = env.SerializeToString()

    assert pb.ProcessedEnvelope.FromString(raw).occurred_at.nanos == 123_456_789
    # datetime holds microseconds: betterproto2 drops the last 3 digits (towards zero, like
    # upb's own ToDatetime), so re-encoding through betterproto2 is lossy below 1 µs.
    bp2 = ProcessedEnvelope.parse(raw)
    assert bp2.occurred_at == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert pb.ProcessedEnvelope.FromString(raw).occurred_at.ToDatetime(tzinfo=UTC) == (
        bp2.occurred_at
    )
    assert pb.ProcessedEnvelope.FromString(bytes(bp2)).occurred_at.nanos == 123_456_000


def test_timestamps_before_the_epoch() -> None:
    before = datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    raw = bytes(bp2_envelope(occurred_at=before))

    assert raw == upb_envelope(occurred_at=before).SerializeToString(deterministic=True)
    assert ProcessedEnvelope.parse(raw).occurred_at == before
    ts = pb.ProcessedEnvelope.FromString(raw).occurred_at
    assert (ts.seconds, ts.nanos) == (-1, 500_000_000)


# --- Struct edge cases ------------------------------------------------------------------------


def test_struct_numbers_are_doubles() -> None:
    raw = bytes(bp2_envelope(data={"small": 7, "big": 2**53 + 1, "neg": -0.0}))

    upb = pb.struct_to_dict(pb.ProcessedEnvelope.FromString(raw).data)
    bp2 = ProcessedEnvelope.parse(raw).data

    assert upb == {"small": 7.0, "big": 2.0**53, "neg": -0.0}
    assert isinstance(upb["small"], float)
    assert bp2 is not None
    assert bp2.to_dict() == upb


def test_struct_to_dict_matches_message_to_dict_for_values_without_a_kind() -> None:
    struct = struct_pb2.Struct()
    struct.fields["unset"].CopyFrom(struct_pb2.Value())  # legal on the wire, no kind set

    assert pb.struct_to_dict(struct) == json_format.MessageToDict(struct) == {"unset": None}


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_struct_to_dict_rejects_numbers_json_cannot_hold(number: float) -> None:
    struct = struct_pb2.Struct()
    struct.update({"x": {"y": [number]}})

    with pytest.raises(ValueError, match="JSON"):
        pb.struct_to_dict(struct)
    with pytest.raises(ValueError, match=r"NaN|Infinity"):
        json_format.MessageToDict(struct)


def test_betterproto2_json_form_round_trips() -> None:
    env = bp2_envelope()
    as_dict = env.to_dict()

    assert as_dict["occurredAt"] == "2026-11-23T08:59:01.123456Z"
    assert as_dict["data"] == as_json(sorted_keys(DATA))
    assert ProcessedEnvelope.from_dict(as_dict) == ProcessedEnvelope.parse(bytes(env))


def test_unknown_fields_are_kept_by_both_runtimes() -> None:
    # A newer producer's field 7 passes through an older reader unharmed.
    raw = bytes(bp2_envelope()) + b"\x38\x01"

    assert bytes(ProcessedEnvelope.parse(raw)) == raw
    # upb's plain serialization writes map entries in hash order; deterministic=True sorts them.
    assert pb.ProcessedEnvelope.FromString(raw).SerializeToString(deterministic=True) == raw


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(pb.DecodeError):
        pb.ProcessedEnvelope.FromString(b"\x0a\x05ab")  # string field cut short


# --- the seed's message -----------------------------------------------------------------------


def _seed_message_class() -> Any:
    """The seed's ``envelope.v1.ProcessedEnvelope`` (fields 1-5), built from its own descriptor."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(struct_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="envelope/v1/envelope.proto",
        package="envelope.v1",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"],
    )
    msg = file.message_type.add(name="ProcessedEnvelope")
    for name, number, kind, type_name in [
        ("end_device_id", 1, f.TYPE_STRING, ""),
        ("occurred_at", 2, f.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
        ("data", 3, f.TYPE_MESSAGE, ".google.protobuf.Struct"),
        ("processed_at", 4, f.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
        ("organization_id", 5, f.TYPE_STRING, ""),
    ]:
        field = msg.field.add(name=name, number=number, type=kind, label=f.LABEL_OPTIONAL)
        if type_name:
            field.type_name = type_name
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("envelope.v1.ProcessedEnvelope")
    )


def test_our_fields_one_to_five_are_the_seeds() -> None:
    seed = _seed_message_class().DESCRIPTOR
    ours = pb.ProcessedEnvelope.DESCRIPTOR

    assert ours.full_name == "ponix.envelope.v1.ProcessedEnvelope"
    for field in seed.fields:
        mine = ours.fields_by_number[field.number]
        assert (mine.name, mine.type) == (field.name, field.type)
        assert (mine.message_type and mine.message_type.full_name) == (
            field.message_type and field.message_type.full_name
        )
    assert {f.number: f.name for f in ours.fields} == {
        1: "end_device_id",
        2: "occurred_at",
        3: "data",
        4: "processed_at",
        5: "organization_id",
        6: "id",
    }


def test_seed_bytes_without_an_id_decode_in_both_runtimes() -> None:
    seed = _seed_message_class()()
    seed.end_device_id = "sensor-0042"
    seed.organization_id = "org-7f3c"
    seed.occurred_at.MergeFromString(
        timestamp_pb2.Timestamp(seconds=1_764_000_000).SerializeToString()
    )
    seed.processed_at.MergeFromString(
        timestamp_pb2.Timestamp(seconds=1_764_000_001, nanos=5_000).SerializeToString()
    )
    struct = struct_pb2.Struct()
    struct.update(DATA)
    seed.data.MergeFromString(struct.SerializeToString())
    raw = seed.SerializeToString()

    upb = pb.ProcessedEnvelope.FromString(raw)
    assert upb.id == ""
    assert upb.end_device_id == "sensor-0042"
    assert upb.organization_id == "org-7f3c"
    assert upb.occurred_at.ToDatetime(tzinfo=UTC) == datetime(2025, 11, 24, 16, 0, tzinfo=UTC)
    assert pb.struct_to_dict(upb.data) == as_json(DATA)

    bp2 = ProcessedEnvelope.parse(raw)
    assert bp2.id == ""
    assert bp2.processed_at == datetime(2025, 11, 24, 16, 0, 1, 5, tzinfo=UTC)
    assert bp2.data is not None
    assert bp2.data.to_dict() == as_json(DATA)

    # ...and our bytes (with an id) still decode as the seed's message: field 6 is unknown there.
    back = _seed_message_class().FromString(bytes(bp2_envelope()))
    assert back.end_device_id == "sensor-0042"


# --- property: any JSON object, any time ------------------------------------------------------

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=24,
)
_objects = st.dictionaries(st.text(max_size=8), _json, max_size=8)
_times = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 (bounds of st.datetimes are naive)
    max_value=datetime(9999, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@settings(max_examples=150, deadline=None)
@given(
    data=_objects,
    occurred_at=_times,
    processed_at=_times,
    envelope_id=st.text(max_size=40),
)
def test_round_trip_between_runtimes(
    data: dict[str, Any], occurred_at: datetime, processed_at: datetime, envelope_id: str
) -> None:
    bp2_raw = bytes(bp2_envelope(data, occurred_at, processed_at, envelope_id))
    upb = upb_envelope(data, occurred_at, processed_at, envelope_id)
    upb_raw = upb.SerializeToString(deterministic=True)

    # Byte-level: betterproto2 re-encodes upb's bytes unchanged (it keeps map entries in wire
    # order). bp2_raw == upb_raw only holds when no key is a prefix of a sibling key: upb's
    # "deterministic" order sorts "a" after "ab" and "" last; map order is not part of the format.
    from_upb = ProcessedEnvelope.parse(upb_raw)
    assert bytes(from_upb) == upb_raw
    assert from_upb.occurred_at == occurred_at
    assert from_upb.processed_at == processed_at
    assert from_upb.id == envelope_id
    assert from_upb.data is not None
    assert from_upb.data.to_dict() == as_json(data)

    from_bp2 = pb.ProcessedEnvelope.FromString(bp2_raw)
    assert from_bp2 == upb
    assert pb.struct_to_dict(from_bp2.data) == as_json(data) == json_format.MessageToDict(upb.data)
