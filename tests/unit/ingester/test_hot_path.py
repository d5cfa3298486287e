"""The ingester's hot-path shortcuts agree with the slow, obvious code they replace.

* ``struct_json`` writes ``data`` straight from the Struct: the same text as
  ``json.dumps(pb.struct_to_dict(data), ensure_ascii=False, allow_nan=False,
  separators=(",", ":"))``, so switching never changes a stored row.
* ``stream_sequence_key`` (the worker's key for an id-less envelope, from the reply subject)
  names a message exactly as ``delivery_key`` does from nats-py's ``Msg.metadata``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from ponix_clickhouse import delivery_key, struct_json
from ponix_proto import pb
from ponix_workers import stream_sequence_key

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
    "reply",
    [
        "$JS.ACK.PROCESSED_ENVELOPES.clickhouse-writer.1.4213.4200.1700000000000000000.17",
        "$JS.ACK.hub.ACCHASH.PROCESSED_ENVELOPES.clickhouse-writer.2.77.70.1700000000000000000.3",
        "$JS.ACK.hub.ACCHASH.S_1.c-1.3.9.8.1700000000000000000.0.XYZ",
    ],
    ids=["v1", "v2", "v2-with-token"],
)
def test_stream_sequence_key_names_a_message_as_delivery_key_does(reply: str) -> None:
    msg = Msg(None, subject="processed_envelopes.acme", reply=reply, data=b"", headers=None)  # type: ignore[arg-type]
    assert stream_sequence_key(reply) == delivery_key(msg)


@pytest.mark.parametrize("reply", ["", "_INBOX.abc", "$JS.ACK.too.short"])
def test_stream_sequence_key_refuses_what_is_not_an_ack_subject(reply: str) -> None:
    with pytest.raises(ValueError, match="ack subject"):
        stream_sequence_key(reply)
