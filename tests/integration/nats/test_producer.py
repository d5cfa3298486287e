"""EnvelopeProducer: Nats-Msg-Id dedup within the duplicate window, pipelined sends, failures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats import EnvelopeProducer, PublishError, ensure_jetstream

pytestmark = pytest.mark.integration

MakeProducer = Callable[..., EnvelopeProducer]


@pytest.fixture
async def make(nc: Client) -> AsyncIterator[MakeProducer]:
    """``make(settings, **options)``: an EnvelopeProducer on ``nc``, closed after the test."""
    made: list[EnvelopeProducer] = []

    def producer(settings: NatsSettings, **options: Any) -> EnvelopeProducer:
        made.append(EnvelopeProducer(nc, settings, **options))
        return made[-1]

    yield producer
    for one in made:
        await one.close()


async def test_publish_returns_the_stream_sequence(
    make: MakeProducer, provisioned: NatsSettings
) -> None:
    producer = make(provisioned)
    ack = await producer.publish(b"one", msg_id="id-1", subject=provisioned.subject_for("acme"))
    assert (ack.stream, ack.seq, ack.duplicate) == (provisioned.stream, 1, False)


async def test_same_msg_id_within_the_window_is_stored_once(
    make: MakeProducer, js: JetStreamContext, provisioned: NatsSettings
) -> None:
    producer = make(provisioned)
    subject = provisioned.subject_for("acme")
    first = await producer.publish(b"payload", msg_id="env-42", subject=subject)
    again = await producer.publish(b"payload", msg_id="env-42", subject=subject)
    assert not first.duplicate
    assert again.duplicate
    assert again.seq == first.seq
    assert (await js.stream_info(provisioned.stream)).state.messages == 1
    assert producer.duplicates == 1


async def test_sends_are_pipelined_and_flush_waits_for_every_puback(
    make: MakeProducer, js: JetStreamContext, provisioned: NatsSettings
) -> None:
    producer = make(provisioned, max_in_flight=32)
    subject = provisioned.subject_for("acme")
    for i in range(500):
        await producer.send(b"x" * 100, msg_id=f"m-{i}", subject=subject)
        assert producer.in_flight <= 32
    # Resending a slice: JetStream drops them as duplicates, the producer counts them.
    for i in range(50):
        await producer.send(b"x" * 100, msg_id=f"m-{i}", subject=subject)
    await producer.flush()
    assert producer.in_flight == 0
    assert producer.published == 550
    assert producer.duplicates == 50
    assert (await js.stream_info(provisioned.stream)).state.messages == 500


async def test_flush_raises_the_first_failure(
    make: MakeProducer, provisioned: NatsSettings
) -> None:
    producer = make(provisioned, ack_timeout=1.0, resend_after=0.3)
    await producer.send(b"fine", msg_id="a", subject=provisioned.subject_for("acme"))
    await producer.send(b"lost", msg_id="b", subject="no.stream.binds.this")
    with pytest.raises(PublishError) as info:
        await producer.flush()
    assert info.value.code == "nats.publish_failed"
    assert info.value.msg_id == "b"
    assert "no responders" in str(info.value)
    assert "\n" not in str(info.value)
    assert producer.resent >= 1
    await producer.flush()  # the failure was reported once; the producer is usable again


async def test_a_publish_sent_before_jetstream_listens_is_resent(
    make: MakeProducer, js: JetStreamContext, settings: NatsSettings
) -> None:
    producer = make(settings, resend_after=0.2)
    await producer.send(b"early", msg_id="e-1", subject=settings.subject_for("acme"))
    await ensure_jetstream(js, settings)  # the stream appears after the first attempt
    await producer.flush()
    assert producer.resent >= 1
    assert producer.published == 1
    assert (await js.stream_info(settings.stream)).state.messages == 1


async def test_oversized_message_is_refused_by_the_stream(
    make: MakeProducer, js: JetStreamContext, settings: NatsSettings
) -> None:
    small = settings.model_copy(update={"max_msg_size": 1024})
    await ensure_jetstream(js, small)
    with pytest.raises(PublishError, match="size"):
        await make(small).publish(b"x" * 2048, msg_id="big", subject=small.subject_for("acme"))


@dataclass
class FakeEnvelope:
    id: str
    organization_id: str

    def SerializeToString(self) -> bytes:  # noqa: N802 - protobuf's name
        return f"{self.id}@{self.organization_id}".encode()


async def test_publish_envelope_uses_its_id_and_organization_subject(
    make: MakeProducer, js: JetStreamContext, provisioned: NatsSettings
) -> None:
    producer = make(provisioned)
    ack = await producer.publish_envelope(FakeEnvelope("0190-abc", "org/1"))
    stored = await js.get_msg(provisioned.stream, ack.seq)
    assert (
        stored.subject == provisioned.subject_for("org/1") == f"{provisioned.subject_prefix}.org_1"
    )
    assert stored.data == b"0190-abc@org/1"
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == "0190-abc"

    await producer.send_envelope(b"raw", envelope_id="0190-def", organization_id="acme")
    await producer.flush()
    with pytest.raises(ValueError, match="envelope_id"):
        await producer.publish_envelope(b"raw")
