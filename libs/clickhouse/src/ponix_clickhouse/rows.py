"""Envelope bytes to a row of the envelope table, on the hot path: upb decode, validation,
Struct to JSON. The ingester builds its rows here, and ``ponix audit`` its expectations.

Every way an envelope can be poison has its own stable code, so the DLQ says exactly why
(docs/architecture.md, "Failure classes").

The JSON of ``data`` is written from the wire bytes of its map entries (``pb.RawDataEnvelope``):
an entry whose value is a number, a short string, a bool or a null is read in a few lines of
Python, anything else (nested structs, lists, long strings, unusual encodings) through upb. The
text of an entry is cached by its bytes (bounded; sensors repeat their keys and values). The
members are those of ``json.dumps(pb.struct_to_dict(data), ensure_ascii=False,
allow_nan=False, separators=(",", ":"))`` of the envelope parsed as ``pb.ProcessedEnvelope``,
written alike, with the top-level keys in the order the envelope carries them (upb's map
iterates in hash order): ``tests/unit/ingester`` holds the two together. Cost per 6-field
envelope of the benchmark, parse included (this machine): ~2.1 µs when entries repeat as sensor
readings do (the benchmark's 100,000 envelopes hold ~2,500 distinct values), against ~3.6 µs
reading the values through upb's map and ~5.5 µs walking upb's ``Struct`` (:func:`struct_json`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from typing import Final, Protocol

from ponix_proto import MSG_ID_HEADER, deterministic_envelope_id, pb

# One envelope's row, in the column order of ENVELOPE_COLUMNS:
# (id, organization_id, end_device_id, occurred_at, processed_at, data). Timestamps are integers
# in the column's unit (seconds for DateTime, milliseconds for DateTime64(3)): the driver takes
# them as they are, where a datetime costs several microseconds each.
Row = tuple[str, str, str, int, int, str]

DECODE_FAILED: Final = "envelope.decode_failed"
INVALID: Final = "envelope.invalid"
TOO_LARGE: Final = "envelope.too_large"
TIMESTAMP_OUT_OF_RANGE: Final = "envelope.timestamp_out_of_range"
SUBJECT_MISMATCH: Final = "envelope.subject_mismatch"

MAX_ID_LENGTH: Final = 128

_NANOS: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# What a UUIDv7's 48-bit millisecond field holds; a deterministic id's time is clamped to it.
_MAX_ID_MS: Final = (1 << 48) - 1
_parse = pb.RawDataEnvelope.FromString
_parse_value = pb.Value.FromString
_parse_struct = pb.Struct.FromString
_float_text = float.__repr__  # what json.dumps writes for a float
_double = struct.Struct("<d").unpack_from
_KEY_JSON: dict[str, str] = {}
_KEY_CACHE_SIZE: Final = 4096
# A map entry's wire bytes -> its key and its "key":value text; cleared when full. Only short
# entries are kept.
_ENTRY_JSON: dict[bytes, tuple[object, str]] = {}
_ENTRY_CACHE_SIZE: Final = 16384
_ENTRY_CACHEABLE_BYTES: Final = 64
# Struct's map field (fields = 1) and its entries' key (1) and value (2), length-delimited.
_ENTRY_TAG: Final = b"\x0a"
_KEY_TAG: Final = 0x0A
_VALUE_TAG: Final = 0x12
_DROPPED: Final = object()
# The tags (field number << 3 | wire type) of google.protobuf.Value's scalar kinds.
_NUMBER_TAG: Final = 0x11  # number_value = 2, fixed64
_STRING_TAG: Final = 0x1A  # string_value = 3, length-delimited
_BOOL_TAG: Final = 0x20  # bool_value = 4, varint


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


class _Sequence(Protocol):
    @property
    def stream(self) -> int: ...


class _Metadata(Protocol):
    @property
    def stream(self) -> str: ...
    @property
    def sequence(self) -> _Sequence: ...


class Delivery(Protocol):
    """What a row is built from: a JetStream message (``nats.aio.msg.Msg`` has it all)."""

    @property
    def subject(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    @property
    def metadata(self) -> _Metadata: ...


def delivery_key(msg: Delivery) -> str:
    """The stable name of an envelope that came without an id: its ``Nats-Msg-Id``, else
    ``<stream>:<stream sequence>``. Redeliveries keep both, so the derived id is stable."""
    headers = msg.headers
    if headers:
        msg_id = headers.get(MSG_ID_HEADER)
        if msg_id:
            return msg_id
    meta = msg.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


class RowBuilder:
    """Turns one delivery into a ``Row`` or a ``Poison``; stateless apart from limits.

    ``subject_for``, when given, binds the tenant to the subject: an envelope whose
    ``organization_id`` would be published on another subject than the one it came on is
    poison (``envelope.subject_mismatch``), so a publisher allowed only on its own
    organization's subject cannot write rows into another's.
    """

    __slots__ = ("_high", "_low", "_max_bytes", "_range", "_scale", "_subject_for", "_subjects")

    def __init__(
        self,
        *,
        max_bytes: int,
        time_range: TimeRange,
        subject_for: Callable[[str], str] | None = None,
    ) -> None:
        self._max_bytes = max_bytes
        self._range = time_range
        self._low = time_range.low
        self._high = time_range.high
        self._scale = time_range.scale
        self._subject_for = subject_for
        # organization_id -> its subject; organizations repeat, the mapping is a loop per char.
        self._subjects: dict[str, str] = {}

    def build(self, msg: Delivery) -> Row | Poison:
        """The row of ``msg``, or why it can never be stored."""
        payload = msg.data
        if len(payload) > self._max_bytes:
            return Poison(TOO_LARGE, f"{len(payload)} bytes exceeds the limit of {self._max_bytes}")
        try:
            env = _parse(payload)
        except pb.DecodeError as exc:
            return Poison(DECODE_FAILED, f"not a ProcessedEnvelope: {exc}")
        device = env.end_device_id
        if not device:
            return Poison(INVALID, "end_device_id is empty")
        occurred = env.occurred_at
        seconds, nanos = occurred.seconds, occurred.nanos
        # An absent timestamp reads as the epoch: only then is presence worth a call.
        if not (seconds or nanos or env.HasField("occurred_at")):
            return Poison(INVALID, "occurred_at is missing")
        low, high, scale = self._low, self._high, self._scale
        if not low <= seconds < high:
            return Poison(TIMESTAMP_OUT_OF_RANGE, f"occurred_at {seconds}s is out of range")
        if not 0 <= nanos < _NANOS:
            return Poison(TIMESTAMP_OUT_OF_RANGE, f"occurred_at nanos {nanos} not in [0, 1e9)")
        occurred_at = seconds * scale + nanos * scale // _NANOS
        done = env.processed_at
        done_seconds, done_nanos = done.seconds, done.nanos
        if done_seconds or done_nanos or env.HasField("processed_at"):
            if not low <= done_seconds < high:
                return Poison(
                    TIMESTAMP_OUT_OF_RANGE, f"processed_at {done_seconds}s is out of range"
                )
            if not 0 <= done_nanos < _NANOS:
                return Poison(
                    TIMESTAMP_OUT_OF_RANGE, f"processed_at nanos {done_nanos} not in [0, 1e9)"
                )
            processed_at = done_seconds * scale + done_nanos * scale // _NANOS
        else:
            processed_at = occurred_at
        organization = env.organization_id
        if self._subject_for is not None:
            expected = self._subjects.get(organization)
            if expected is None:
                expected = self._subject_for(organization)
                if len(self._subjects) < _KEY_CACHE_SIZE:
                    self._subjects[organization] = expected
            if msg.subject != expected:
                return Poison(
                    SUBJECT_MISMATCH,
                    f"organization_id {organization!r} belongs on {expected!r},"
                    f" not {msg.subject!r}",
                )
        envelope_id = env.id
        if len(envelope_id) > MAX_ID_LENGTH:
            return Poison(INVALID, f"id is longer than {MAX_ID_LENGTH} characters")
        try:
            # A slice of upb's repeated field is a list built in C: 0.2 µs less per envelope
            # than iterating the container (this machine, the benchmark's envelopes).
            data = raw_struct_json(env.data.fields[:])
        except (pb.DecodeError, UnicodeDecodeError) as exc:
            return Poison(DECODE_FAILED, f"not a ProcessedEnvelope: data: {exc}")
        except (ValueError, RecursionError) as exc:
            return Poison(INVALID, f"data is not representable as JSON: {exc}")
        if not envelope_id:
            # The id's time is occurred_at in ms (what the UUIDv7 holds), clamped to its range:
            # a DateTime64 table takes times before 1970 that a UUIDv7 cannot carry.
            ms = min(max(seconds * 1000 + nanos // 1_000_000, 0), _MAX_ID_MS)
            envelope_id = deterministic_envelope_id(
                delivery_key(msg), _EPOCH + timedelta(milliseconds=ms)
            )
        return (envelope_id, organization, device, occurred_at, processed_at, data)


def struct_json(struct: pb.Struct) -> str:
    """A ``google.protobuf.Struct`` as compact JSON text, as ``json.dumps`` would write its
    ``pb.struct_to_dict`` (keys in map order, ``","`` and ``":"``, non-ASCII kept). Raises
    ``ValueError`` for NaN and infinities, ``RecursionError`` for absurd nesting.

    Scalars are handled inline: iterating the upb map and ``WhichOneof`` cost ~0.5 µs each per
    field, so every call saved counts. Keys repeat across envelopes; their JSON is cached.
    """
    fields = struct.fields
    parts = []
    for key in fields:
        value = fields[key]
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            number = value.number_value
            if number - number != 0:  # NaN and infinities, without a call
                raise ValueError(f"{number} in a Struct has no JSON form")
            text = _float_text(number)
        elif kind == "string_value":
            text = encode_basestring(value.string_value)
        elif kind == "bool_value":
            text = "true" if value.bool_value else "false"
        else:
            text = _value_json(value)
        parts.append((_KEY_JSON.get(key) or _key_json(key)) + text)
    return "{" + ",".join(parts) + "}"


def raw_struct_json(entries: Sequence[bytes]) -> str:
    """The JSON of a Struct read as ``pb.RawDataEnvelope`` reads ``data``: the wire bytes of
    each map entry (a key and its Value), in the order the envelope carries them. Writes what
    :func:`struct_json` writes for the Struct itself, with the keys in that order; a key given
    twice keeps its first place and its last value (a map's rule: the last one wins).
    Raises ``pb.DecodeError`` or ``UnicodeDecodeError`` for bytes that are no entry (upb would
    have refused the envelope), ``ValueError`` for NaN and infinities."""
    get = _ENTRY_JSON.get
    members: dict[object, str] = {}
    for entry in entries:
        key, text = get(entry) or _entry_json(entry)
        members[key] = text
    members.pop(_DROPPED, None)
    return "{" + ",".join(members.values()) + "}"


def _entry_json(entry: bytes) -> tuple[object, str]:
    """A map entry's key and its ``"key":value`` text, cached when short. The common shape
    (key field 1 then value field 2, one-byte lengths) is read here, anything else by upb; an
    entry upb drops (a key of the wrong wire type) is keyed :data:`_DROPPED`."""
    size = len(entry)
    key_end = entry[1] + 2 if size > 1 and entry[0] == _KEY_TAG and entry[1] < 0x80 else 0
    if (
        key_end
        and key_end + 1 < size
        and entry[key_end] == _VALUE_TAG
        and entry[key_end + 1] < 0x80
        and key_end + 2 + entry[key_end + 1] == size
    ):
        key = entry[2:key_end].decode()
        found: tuple[object, str] = (
            key,
            (_KEY_JSON.get(key) or _key_json(key)) + _raw_value_json(entry[key_end + 2 :]),
        )
    else:
        # The entry as the one field of a Struct: upb parses it, whatever its encoding.
        struct = _parse_struct(_ENTRY_TAG + pb.varint(size) + entry)
        found = (_DROPPED, "")
        for key, value in struct.fields.items():
            found = (key, (_KEY_JSON.get(key) or _key_json(key)) + _value_json(value))
    if size <= _ENTRY_CACHEABLE_BYTES:
        if len(_ENTRY_JSON) >= _ENTRY_CACHE_SIZE:
            _ENTRY_JSON.clear()
        _ENTRY_JSON[entry] = found
    return found


def _raw_value_json(raw: bytes) -> str:
    size = len(raw)
    tag = raw[0] if size else 0
    if tag == _NUMBER_TAG and size == 9:
        number = _double(raw, 1)[0]
        if number - number != 0:  # NaN and infinities, without a call
            raise ValueError(f"{number} in a Struct has no JSON form")
        return _float_text(number)
    if tag == _STRING_TAG and size >= 2 and raw[1] < 0x80 and size == raw[1] + 2:
        return encode_basestring(raw[2:].decode())  # one-byte length: up to 127 bytes
    if tag == _BOOL_TAG and size == 2 and raw[1] < 2:
        return "true" if raw[1] else "false"
    # null, nested, long, or encoded some other valid way: upb decides
    return _value_json(_parse_value(raw))


def _key_json(key: str) -> str:
    text = encode_basestring(key) + ":"
    if len(_KEY_JSON) < _KEY_CACHE_SIZE:
        _KEY_JSON[key] = text
    return text


def _value_json(value: pb.Value) -> str:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number - number != 0:  # NaN and infinities, without a call
            raise ValueError(f"{number} in a Struct has no JSON form")
        return _float_text(number)
    if kind == "string_value":
        return encode_basestring(value.string_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "struct_value":
        return struct_json(value.struct_value)
    if kind == "list_value":
        return "[" + ",".join([_value_json(item) for item in value.list_value.values]) + "]"
    return "null"  # null_value, or no kind at all
