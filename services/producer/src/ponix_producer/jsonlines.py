"""Envelopes from JSON lines: one proto-JSON ``ProcessedEnvelope`` object per line.

Fields use the proto names (``end_device_id``) or their lowerCamel JSON names; timestamps are
RFC 3339 strings; ``data`` is any JSON object. An envelope without ``id`` gets one derived from
its content (:func:`content_envelope_id`), so the same line read twice gives the same envelope.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC

from google.protobuf import json_format

from ponix_producer.synthetic import OutgoingEnvelope
from ponix_proto import deterministic_envelope_id, pb


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that is not an envelope: where it is and why, in one line."""

    line_number: int
    reason: str

    code = "envelope.bad_json_line"

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}"


def envelope_from_json(text: str) -> OutgoingEnvelope:
    """Parse one JSON envelope; raises ``ValueError`` with a one-line reason."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"not JSON ({exc.msg} at column {exc.colno})"
        raise ValueError(msg) from None
    if not isinstance(obj, dict):
        msg = f"expected a JSON object, got {type(obj).__name__}"
        raise ValueError(msg)
    env = pb.ProcessedEnvelope()
    try:
        json_format.ParseDict(obj, env)
    except json_format.ParseError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    if not env.end_device_id:
        raise ValueError("end_device_id is required")
    if not env.HasField("occurred_at"):
        raise ValueError("occurred_at is required")
    if not env.id:
        env.id = content_envelope_id(env)
    return OutgoingEnvelope(env.SerializeToString(), env.id, env.organization_id)


def content_envelope_id(env: pb.ProcessedEnvelope) -> str:
    """The id of an envelope that came without one: a UUIDv7 at its ``occurred_at`` whose other
    bits hash its content (every field but ``id``, in protobuf's deterministic encoding).

    Lines that decode to the same envelope (whatever their key order, spacing or field-name
    spelling) get the same id, so publishing a file again is idempotent: JetStream drops the
    repeated ``Nats-Msg-Id`` inside its duplicate window, and the table keeps one row per id.
    """
    unnamed = pb.ProcessedEnvelope()
    unnamed.CopyFrom(env)
    unnamed.ClearField("id")
    digest = hashlib.sha256(unnamed.SerializeToString(deterministic=True)).hexdigest()
    return deterministic_envelope_id(f"content:{digest}", env.occurred_at.ToDatetime(tzinfo=UTC))


def read_envelopes(lines: Iterable[str]) -> Iterator[OutgoingEnvelope | BadLine]:
    """Each non-blank line as an envelope, or a ``BadLine`` naming its line number."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield envelope_from_json(line)
        except ValueError as exc:
            yield BadLine(number, str(exc))
