"""Envelope ids: UUIDv7 strings (RFC 9562), time-ordered so that ClickHouse sort order follows time.

Layout of every id made here (128 bits, most significant first)::

    unix_ts_ms (48) | ver = 7 (4) | rand_a (12) | var = 0b10 (2) | rand_b (62)

* :func:`new_envelope_id` fills ``rand_a`` with the sub-millisecond fraction of the clock
  (RFC 9562 §6.2, method 3) and ``rand_b`` with ``os.urandom``. Without ``at``, the 60-bit
  (ms, fraction) clock is kept strictly increasing within the process, so ids made one after the
  other sort in the order they were made even when the wall clock stalls or steps back.
* :func:`deterministic_envelope_id` fills ``rand_a`` and ``rand_b`` from SHA-256 of a fixed
  namespace and a key, and the timestamp from ``at``. It is for envelopes that arrive without an id
  (seed-era producers): the ingester passes ``Nats-Msg-Id`` when present, else
  ``f"{stream}:{sequence}"``, and the envelope's ``occurred_at``. A redelivery carries the same
  header, sequence and bytes, so it gets the same id and ReplacingMergeTree collapses the row.
  Chosen over ``uuid5`` because the result is still a UUIDv7 that sorts by event time, so one
  column has one kind of id; the price is that it is a hash only in its 74 low bits.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

__all__ = (
    "ENVELOPE_ID_NAMESPACE",
    "MSG_ID_HEADER",
    "deterministic_envelope_id",
    "envelope_id_timestamp",
    "new_envelope_id",
    "parse_envelope_id",
)

MSG_ID_HEADER = "Nats-Msg-Id"
"""The NATS header that carries the envelope id: JetStream's duplicate window drops a repeat of
it, which makes publishing idempotent. The one definition every part of Ponix uses."""

ENVELOPE_ID_NAMESPACE = uuid.UUID("5d0a6f3e-9b1c-4c7a-8e2f-6a41b3c9d702")
"""Mixed into :func:`deterministic_envelope_id`'s hash; never change it (ids would change)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_MAX_MS = (1 << 48) - 1
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B_MASK = (1 << 62) - 1
_HEX = frozenset("0123456789abcdefABCDEF")

_lock = threading.Lock()
_last_clock = -1  # the last (unix_ts_ms << 12 | fraction) handed out by new_envelope_id()


def _pack(unix_ts_ms: int, rand_a: int, rand_b: int) -> str:
    if not 0 <= unix_ts_ms <= _MAX_MS:
        raise ValueError(f"time outside the UUIDv7 range: {unix_ts_ms} ms since the epoch")
    value = (unix_ts_ms << 80) | _VERSION | ((rand_a & 0xFFF) << 64) | _VARIANT | rand_b
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), without building the UUID object
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ms_and_fraction(at: datetime) -> tuple[int, int]:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("envelope id time must be timezone-aware (use datetime.now(UTC))")
    since = at - _EPOCH
    ms = since // _MS
    micros_in_ms = (since - ms * _MS) // timedelta(microseconds=1)
    return ms, micros_in_ms * 4096 // 1000


def new_envelope_id(at: datetime | None = None) -> str:
    """A new UUIDv7 string for an envelope made at ``at`` (default: now).

    Ids made without ``at`` are strictly increasing within the process (thread-safe). With ``at``,
    the id carries that time (it must be timezone-aware) and fresh randomness.
    """
    rand_b = int.from_bytes(os.urandom(8), "big") & _RAND_B_MASK
    if at is not None:
        ms, fraction = _ms_and_fraction(at)
        return _pack(ms, fraction, rand_b)
    global _last_clock
    ns = time.time_ns()
    clock = ((ns // 1_000_000) << 12) | ((ns % 1_000_000) * 4096 // 1_000_000)
    with _lock:
        if clock <= _last_clock:
            clock = _last_clock + 1
        _last_clock = clock
    return _pack(clock >> 12, clock & 0xFFF, rand_b)


def deterministic_envelope_id(key: str, at: datetime | None = None) -> str:
    """A stable UUIDv7 string for an envelope that came without an id.

    ``key`` identifies the message: its ``Nats-Msg-Id`` header, or else ``"<stream>:<sequence>"``.
    ``at`` is the envelope's ``occurred_at`` (timezone-aware); the id then sorts by that time.
    Without ``at`` the timestamp bits are zero (the id sorts before every time-based one). The same
    ``(key, at)`` always gives the same id, in every process and release.
    """
    digest = hashlib.sha256(ENVELOPE_ID_NAMESPACE.bytes + key.encode("utf-8")).digest()
    rand_a = int.from_bytes(digest[:2], "big") & 0xFFF
    rand_b = int.from_bytes(digest[2:10], "big") & _RAND_B_MASK
    ms = 0 if at is None else _ms_and_fraction(at)[0]
    return _pack(ms, rand_a, rand_b)


def parse_envelope_id(value: str) -> uuid.UUID:
    """Parse an envelope id in the canonical 36-character form (what ClickHouse's UUID accepts).

    Any UUID version is accepted (producers may send v4); raises ``ValueError`` for anything else,
    including the braced, URN and hyphen-less spellings that ``uuid.UUID`` would take.
    """
    if (
        len(value) != 36
        or value[8] != "-"
        or value[13] != "-"
        or value[18] != "-"
        or value[23] != "-"
        or not _HEX.issuperset(value.replace("-", ""))
    ):
        raise ValueError(f"not a canonical UUID string: {value!r}")
    return uuid.UUID(value)


def envelope_id_timestamp(envelope_id: str) -> datetime:
    """The time (UTC, millisecond precision) carried by a UUIDv7 envelope id.

    Raises ``ValueError`` if ``envelope_id`` is not a canonical UUID string of version 7.
    """
    parsed = parse_envelope_id(envelope_id)
    if parsed.version != 7 or parsed.variant != uuid.RFC_4122:
        raise ValueError(f"not a UUIDv7: {envelope_id!r}")
    return _EPOCH + (parsed.int >> 80) * _MS
