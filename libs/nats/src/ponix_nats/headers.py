"""Every NATS header name Ponix reads or writes, defined once.

``Nats-Msg-Id`` is JetStream's own: the envelope id, which with the stream's duplicate window
makes publishing idempotent. The ``Ponix-Dlq-*`` headers ride on a dead letter and say why it
failed and where it came from; ``Ponix-Redriven-From`` marks a message republished from the DLQ.
"""

from __future__ import annotations

from typing import Final

from ponix_proto import MSG_ID_HEADER

NATS_MSG_ID: Final = MSG_ID_HEADER
"""``Nats-Msg-Id``, the envelope id; JetStream drops a repeat of it inside the stream's duplicate
window. Spelled in ``ponix_proto`` (the row rule in ``ponix_clickhouse`` reads it too)."""
NATS_HEADER_PREFIX: Final = "Nats-"
"""JetStream's own headers start with this; a dead letter does not carry them over."""

DLQ_HEADER_PREFIX: Final = "Ponix-Dlq-"
HEADER_REASON: Final = "Ponix-Dlq-Reason"
HEADER_CODE: Final = "Ponix-Dlq-Code"
HEADER_STREAM: Final = "Ponix-Dlq-Stream"
HEADER_SEQUENCE: Final = "Ponix-Dlq-Sequence"
HEADER_DELIVERIES: Final = "Ponix-Dlq-Deliveries"
HEADER_FAILED_AT: Final = "Ponix-Dlq-Failed-At"
HEADER_SUBJECT: Final = "Ponix-Dlq-Subject"
HEADER_MSG_ID: Final = "Ponix-Dlq-Msg-Id"
"""The original message's ``Nats-Msg-Id`` (the copy's own is ``dlq:<stream>:<seq>``)."""
HEADER_TRUNCATED: Final = "Ponix-Dlq-Truncated"
"""On a dead letter trimmed to fit the server's max_payload: the original size."""
HEADER_REDRIVEN_FROM: Final = "Ponix-Redriven-From"
"""On a message republished by a redrive: ``<dlq stream>:<dlq sequence>`` it came from."""
