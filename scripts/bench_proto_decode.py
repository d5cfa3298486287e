"""Decode throughput of the envelope in each protobuf runtime (design §6, "Protobuf runtimes").

    uv run python scripts/bench_proto_decode.py [--seconds 1.0]

The envelope is ~200 bytes with a 6-field ``data`` Struct. Each contender decodes the same bytes
to a usable row: both timestamps as UTC ``datetime`` and ``data`` as a ``dict``. Numbers are
envelopes per second on one core, best of 3 runs; compare them with each other, not across machines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2

from ponix_proto import ProcessedEnvelope, Struct, new_envelope_id, pb

Row = tuple[Any, ...]


def sample() -> bytes:
    """A representative envelope: UUID-sized ids and a 6-field sensor payload."""
    env = ProcessedEnvelope(
        end_device_id="sensor-0b7a6f0e8c2d",
        occurred_at=datetime(2026, 11, 23, 8, 59, 1, 123456, tzinfo=UTC),
        data=Struct.from_dict(
            {
                "temperature": 21.5,
                "humidity": 48,
                "battery": 3.61,
                "door_open": False,
                "status": "ok",
                "rssi": -71,
            }
        ),
        processed_at=datetime(2026, 11, 23, 8, 59, 1, 456789, tzinfo=UTC),
        organization_id="org-7f3c1a",
        id=new_envelope_id(),
    )
    return bytes(env)


def _value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: _value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return None


def upb_parse_only(raw: bytes) -> Row:
    return (pb.ProcessedEnvelope.FromString(raw),)


def upb_row_walk(raw: bytes) -> Row:
    m = pb.ProcessedEnvelope.FromString(raw)
    return (
        m.id,
        m.end_device_id,
        m.occurred_at.ToDatetime(UTC),
        m.processed_at.ToDatetime(UTC),
        {k: _value(v) for k, v in m.data.fields.items()},
    )


def upb_row_message_to_dict(raw: bytes) -> Row:
    m = pb.ProcessedEnvelope.FromString(raw)
    return (
        m.id,
        m.end_device_id,
        m.occurred_at.ToDatetime(UTC),
        m.processed_at.ToDatetime(UTC),
        json_format.MessageToDict(m.data),
    )


def bp2_parse_only(raw: bytes) -> Row:
    return (ProcessedEnvelope.parse(raw),)


def bp2_row(raw: bytes) -> Row:
    m = ProcessedEnvelope.parse(raw)
    return (
        m.id,
        m.end_device_id,
        m.occurred_at,
        m.processed_at,
        m.data.to_dict() if m.data is not None else {},
    )


CONTENDERS: dict[str, Callable[[bytes], Row]] = {
    "upb: parse only": upb_parse_only,
    "upb: row (direct Struct walk)": upb_row_walk,
    "upb: row (json_format.MessageToDict)": upb_row_message_to_dict,
    "betterproto2: parse only": bp2_parse_only,
    "betterproto2: row (Struct.to_dict)": bp2_row,
}


def rate(fn: Callable[[bytes], Row], raw: bytes, seconds: float) -> float:
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        deadline = start + seconds / 3
        while True:
            for _ in range(200):
                fn(raw)
            n += 200
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, n / (now - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="time per contender")
    args = parser.parse_args()
    raw = sample()
    assert bp2_row(raw)[1:] == upb_row_walk(raw)[1:], "the runtimes disagree"
    print(f"envelope: {len(raw)} bytes, data with 6 fields")
    for name, fn in CONTENDERS.items():
        r = rate(fn, raw, args.seconds)
        print(f"{name:40} {r:>12,.0f}/s  {1e6 / r:8.2f} µs")


if __name__ == "__main__":
    main()
