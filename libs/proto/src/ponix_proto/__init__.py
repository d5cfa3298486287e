"""Ponix envelope types: betterproto2 API and upb-backed hot-path decoding.

Both are generated from ``proto/ponix/envelope/v1/envelope.proto`` by ``scripts/gen_protos.py``
(``make proto``) and agree byte for byte.

* :class:`ProcessedEnvelope` (betterproto2): the typed, shared API. Timestamps are timezone-aware
  UTC ``datetime`` (``None`` when absent; sub-microsecond nanos are dropped), ``data`` is a
  :class:`Struct` (``Struct.from_dict({...})`` / ``.to_dict()``; numbers come back as ``float``)::

      env = ProcessedEnvelope(end_device_id="d1", organization_id="o1", id=new_envelope_id(),
                              occurred_at=datetime.now(UTC), data=Struct.from_dict({"t": 21.5}))
      raw = bytes(env); same = ProcessedEnvelope.parse(raw)

* :mod:`ponix_proto.pb`: Google ``protobuf`` (upb) classes for the hot path (~20x faster per row):
  ``pb.ProcessedEnvelope.FromString(raw)``, ``pb.struct_to_dict(env.data)``.
* Envelope ids: :func:`new_envelope_id` (UUIDv7), :func:`deterministic_envelope_id` (for envelopes
  that came without one), :func:`parse_envelope_id`, :func:`envelope_id_timestamp`.
"""

from ponix_proto import pb
from ponix_proto._generated.bp2.google.protobuf import Struct
from ponix_proto._generated.bp2.ponix.envelope.v1 import ProcessedEnvelope
from ponix_proto._ids import (
    ENVELOPE_ID_NAMESPACE,
    MSG_ID_HEADER,
    deterministic_envelope_id,
    envelope_id_timestamp,
    new_envelope_id,
    parse_envelope_id,
)

__all__ = (
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
