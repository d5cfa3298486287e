"""Envelope bytes to a ClickHouse row, on the hot path: upb decode, validation, Struct to JSON.

Every way an envelope can be poison has its own stable code, so the DLQ says exactly why.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Final, TypeVar

from ponix_proto import deterministic_envelope_id, pb

# One envelope's row, in the column order of ponix_clickhouse's envelope table:
# (id, organization_id, end_device_id, occurred_at, processed_at, data). Timestamps are integers
# in the column's unit (seconds for DateTime, milliseconds for DateTime64(3)): the driver takes
# them as they are, where a datetime costs several microseconds each.
Row = tuple[str, str, str, int, int, str]

DECODE_FAILED: Final = "envelope.decode_failed"
INVALID: Final = "envelope.invalid"
TOO_LARGE: Final = "envelope.too_large"
TIMESTAMP_OUT_OF_RANGE: Final = "envelope.timestamp_out_of_range"

MAX_ID_LENGTH: Final = 128


@dataclass(frozen=True, slots=True)
class Poison:
    """Why an envelope can never be stored; ``code`` is stable, ``reason`` is one line."""

    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimeRange:
    """What the table's DateTime columns hold: epoch seconds in [low, high), and the integer
    units per second the driver expects (``TableLayout.time_scale()``)."""

    low: int
    high: int
    scale: int = 1

    @classmethod
    def for_column_type(cls, column_type: str, scale: int = 1) -> TimeRange:
        if column_type.startswith("DateTime64"):
            # DateTime64: 1900-01-01 .. 2299-12-31 on modern servers.
            return cls(-2_208_988_800, 10_413_792_000, scale)
        # DateTime is UInt32 seconds: 1970-01-01 .. 2106-02-07.
        return cls(0, 4_294_967_296, scale)


M = TypeVar("M")


class RowBuilder:
    """Turns one message's payload into a ``Row`` or a ``Poison``; stateless apart from limits."""

    __slots__ = ("_max_bytes", "_range")

    def __init__(self, *, max_bytes: int, time_range: TimeRange) -> None:
        self._max_bytes = max_bytes
        self._range = time_range

    def build(self, payload: bytes, source: M, key_of: Callable[[M], str]) -> Row | Poison:
        """``key_of(source)`` names the message when the envelope has no id (its Nats-Msg-Id,
        or stream:sequence); it is only called for such envelopes."""
        if len(payload) > self._max_bytes:
            return Poison(TOO_LARGE, f"{len(payload)} bytes exceeds the limit of {self._max_bytes}")
        try:
            env = pb.ProcessedEnvelope.FromString(payload)
        except pb.DecodeError as exc:
            return Poison(DECODE_FAILED, f"not a ProcessedEnvelope: {exc}")
        if not env.end_device_id:
            return Poison(INVALID, "end_device_id is empty")
        if not env.HasField("occurred_at"):
            return Poison(INVALID, "occurred_at is missing")
        occurred = env.occurred_at
        low, high, scale = self._range.low, self._range.high, self._range.scale
        if not low <= occurred.seconds < high:
            return Poison(
                TIMESTAMP_OUT_OF_RANGE, f"occurred_at {occurred.seconds}s is out of range"
            )
        occurred_at = occurred.seconds * scale + occurred.nanos * scale // 1_000_000_000
        envelope_id = env.id
        if not envelope_id:
            envelope_id = deterministic_envelope_id(key_of(source), occurred.ToDatetime(UTC))
        elif len(envelope_id) > MAX_ID_LENGTH:
            return Poison(INVALID, f"id is longer than {MAX_ID_LENGTH} characters")
        if env.HasField("processed_at"):
            done = env.processed_at
            if not low <= done.seconds < high:
                return Poison(
                    TIMESTAMP_OUT_OF_RANGE, f"processed_at {done.seconds}s is out of range"
                )
            processed_at = done.seconds * scale + done.nanos * scale // 1_000_000_000
        else:
            processed_at = occurred_at
        try:
            data = json.dumps(
                pb.struct_to_dict(env.data),
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            )
        except (ValueError, RecursionError) as exc:
            return Poison(INVALID, f"data is not representable as JSON: {exc}")
        return (
            envelope_id,
            env.organization_id,
            env.end_device_id,
            occurred_at,
            processed_at,
            data,
        )
