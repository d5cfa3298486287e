"""A JetStream delivery as the row builder and the processor read it, without a server."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeSequence:
    stream: int


@dataclass
class FakeMetadata:
    sequence: FakeSequence
    stream: str = "PROCESSED_ENVELOPES"
    num_delivered: int = 1


class FakeDelivery:
    """``data``, ``headers``, ``subject`` and ``metadata`` (stream, stream sequence, delivery
    count), as ``nats.aio.msg.Msg`` has them."""

    def __init__(
        self,
        data: bytes,
        headers: dict[str, str] | None = None,
        *,
        subject: str = "processed_envelopes.acme",
        sequence: int = 1,
        stream: str = "PROCESSED_ENVELOPES",
    ) -> None:
        self.data = data
        self.headers = headers
        self.subject = subject
        self.metadata = FakeMetadata(FakeSequence(sequence), stream)
