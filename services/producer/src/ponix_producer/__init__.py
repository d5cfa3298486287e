"""Ponix producer: publishes envelopes to JetStream."""

from ponix_producer.jsonlines import (
    BadLine,
    content_envelope_id,
    envelope_from_json,
    read_envelopes,
)
from ponix_producer.producer import Producer
from ponix_producer.settings import ProducerSettings
from ponix_producer.synthetic import OutgoingEnvelope, SyntheticEnvelopes

__all__ = (
    "BadLine",
    "OutgoingEnvelope",
    "Producer",
    "ProducerSettings",
    "SyntheticEnvelopes",
    "content_envelope_id",
    "envelope_from_json",
    "read_envelopes",
)
