"""The ingester's hot-path shortcuts agree with the slow, obvious code they replace.

* ``struct_json`` writes ``data`` straight from the Struct: the same text as
  ``json.dumps(pb.struct_to_dict(data), ensure_ascii=False, allow_nan=False,
  separators=(",", ":"))``, so switching never changes a stored row.
* ``raw_struct_json`` writes it from the map entries' wire bytes (``pb.RawDataEnvelope``): the
  same members written alike, the keys in the order the envelope carries them, and for bytes
  that are no entry the refusal upb gives the whole envelope.
* ``delivery_key`` names an id-less envelope by its stream and stream sequence, read from the
  ack subject by nats-py's ``Msg.metadata``.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from ponix_clickhouse import delivery_key, raw_struct_json, struct_json
from ponix_proto import pb

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53).map(float),
    st.text(max_size=12),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _struct(data: dict[str, Any]) -> pb.Struct:
    struct = pb.Struct()
    struct.update(data)
    # Round trip through the wire, as the ingester sees it.
    return pb.Struct.FromString(struct.SerializeToString())


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=10), values, max_size=8))
def test_struct_json_is_the_text_json_dumps_writes(data: dict[str, Any]) -> None:
    struct = _struct(data)
    expected = json.dumps(
        pb.struct_to_dict(struct), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    )
    assert struct_json(struct) == expected
    assert json.loads(struct_json(struct)) == json.loads(expected)


def _in_wire_order(wire: bytes) -> str:
    """``struct_json``'s text of the envelope's ``data``, its top-level members in the order of
    the envelope's own entries (what ``raw_struct_json`` promises)."""
    struct = pb.ProcessedEnvelope.FromString(wire).data
    members = {}
    for entry in pb.RawDataEnvelope.FromString(wire).data.fields:
        one = pb.Struct.FromString(b"\x0a" + bytes([len(entry)]) + entry)
        [key] = one.fields
        members[key] = struct_json(one)[1:-1]
    assert len(members) == len(struct.fields)
    return "{" + ",".join(members.values()) + "}"


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=10), values, max_size=8))
def test_raw_struct_json_is_the_text_of_the_struct_in_wire_order(data: dict[str, Any]) -> None:
    envelope = pb.ProcessedEnvelope()
    envelope.data.update(data)
    wire = envelope.SerializeToString()  # what the ingester receives, read both ways
    fields = pb.RawDataEnvelope.FromString(wire).data.fields
    got = raw_struct_json(fields)
    assert got == raw_struct_json(fields)  # the cached text is the same
    assert json.loads(got) == json.loads(struct_json(pb.ProcessedEnvelope.FromString(wire).data))
    if all(len(entry) < 0x80 for entry in fields):
        assert got == _in_wire_order(wire)


def test_raw_struct_json_keeps_the_publishers_key_order() -> None:
    entries = [
        b"\x0a\x01" + key.encode() + b"\x12\x09\x11" + struct.pack("<d", number)
        for key, number in (("z", 1.0), ("a", 2.0), ("m", 3.0))
    ]
    assert raw_struct_json(entries) == '{"z":1.0,"a":2.0,"m":3.0}'


def test_raw_struct_json_reads_long_entries_through_upb() -> None:
    envelope = pb.ProcessedEnvelope()
    envelope.data.update({"note": "é" * 200, "n": 1.5})
    wire = envelope.SerializeToString()
    got = raw_struct_json(pb.RawDataEnvelope.FromString(wire).data.fields)
    assert json.loads(got) == {"note": "é" * 200, "n": 1.5}
    assert '"note":"' + "é" * 200 + '"' in got  # non-ASCII kept, as json.dumps(ensure_ascii=False)


def test_raw_struct_json_takes_the_last_value_of_a_key_given_twice() -> None:
    wire = b"".join(
        b"\x1a" + bytes([len(body) + 2]) + b"\x0a" + bytes([len(body)]) + body
        for body in (
            b"\x0a\x01k\x12\x02\x20\x00",  # "k": false
            b"\x0a\x01j\x12\x02\x20\x01",  # "j": true
            b"\x0a\x01k\x12\x02\x20\x01",  # "k": true
        )
    )
    upb = pb.ProcessedEnvelope.FromString(wire).data
    assert dict(upb.fields.items()).keys() == {"k", "j"}
    got = raw_struct_json(pb.RawDataEnvelope.FromString(wire).data.fields)
    assert got == '{"k":true,"j":true}'
    assert json.loads(got) == pb.struct_to_dict(upb)


def _entry_bytes_cases() -> st.SearchStrategy[bytes]:
    # Mostly near the shapes the fast path reads (a tag, a length, a payload), and any bytes:
    # as a value under a short key, and as a whole entry.
    tags = st.sampled_from([b"\x08", b"\x11", b"\x1a", b"\x20", b"\x2a", b"\x32", b"\x38"])
    values = st.one_of(
        st.binary(max_size=24),
        st.builds(lambda tag, rest: tag + rest, tags, st.binary(max_size=24)),
        st.builds(
            lambda text, extra: b"\x1a" + bytes([len(text)]) + text + extra,
            st.binary(max_size=12),
            st.binary(max_size=3),
        ),
        st.builds(lambda b: b"\x20" + bytes([b]), st.integers(0, 255)),
    )
    keyed = st.builds(
        lambda key, value: (
            b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
        ),
        st.binary(max_size=4),
        values,
    )
    return st.one_of(keyed, st.binary(max_size=24), values)


@settings(max_examples=1500, deadline=None)
@given(entry=_entry_bytes_cases())
def test_raw_struct_json_agrees_with_upb_on_any_entry_bytes(entry: bytes) -> None:
    # The same wire bytes, as a whole envelope: upb's own parse is the reference.
    shadow = pb.RawDataEnvelope()
    shadow.data.fields.append(entry)
    wire = shadow.SerializeToString()
    try:
        expected: str | type[Exception] = struct_json(pb.ProcessedEnvelope.FromString(wire).data)
    except pb.DecodeError:
        expected = pb.DecodeError
    except ValueError:
        expected = ValueError
    fields = pb.RawDataEnvelope.FromString(wire).data.fields
    try:
        got: str | type[Exception] = raw_struct_json(fields)
    except (pb.DecodeError, UnicodeDecodeError):
        got = pb.DecodeError
    except ValueError:
        got = ValueError
    assert got == expected


def test_struct_json_of_a_value_without_a_kind_is_null() -> None:
    struct = pb.Struct()
    struct.fields["unset"].Clear()
    assert struct_json(struct) == '{"unset":null}'


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_struct_json_rejects_numbers_json_cannot_hold(number: float) -> None:
    struct = pb.Struct()
    struct.update({"ok": 1.0, "nested": {"bad": [number]}})
    with pytest.raises(ValueError, match="has no JSON form"):
        struct_json(struct)


@pytest.mark.parametrize(
    ("reply", "key"),
    [
        (
            "$JS.ACK.PROCESSED_ENVELOPES.clickhouse-writer.1.4213.4200.1700000000000000000.17",
            "PROCESSED_ENVELOPES:4213",
        ),
        (
            "$JS.ACK.hub.ACCHASH.PROCESSED_ENVELOPES.clickhouse-writer.2.77.70.1700000000000000000.3",
            "PROCESSED_ENVELOPES:77",
        ),
    ],
    ids=["v1", "v2"],
)
def test_delivery_key_names_an_id_less_message_by_stream_and_sequence(reply: str, key: str) -> None:
    msg = Msg(None, subject="processed_envelopes.acme", reply=reply, data=b"", headers=None)  # type: ignore[arg-type]
    assert delivery_key(msg) == key
