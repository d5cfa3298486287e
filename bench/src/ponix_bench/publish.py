"""Pre-publishing the benchmark's envelopes, and publishing at a steady rate for latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from nats.aio.client import Client

from ponix_config import NatsSettings
from ponix_nats import EnvelopeProducer
from ponix_producer.synthetic import OutgoingEnvelope, SyntheticEnvelopes

NATS_MSG_ID = "Nats-Msg-Id"

SEED = 7


async def publish_all(nc: Client, settings: NatsSettings, count: int) -> float:
    """Publish ``count`` synthetic envelopes (about 200 bytes, 6-field data); seconds taken."""
    envelopes = SyntheticEnvelopes(seed=SEED)
    producer = EnvelopeProducer(nc, settings, max_in_flight=4096)
    started = time.monotonic()
    try:
        for _ in range(count):
            env = envelopes.next()
            await producer.send(
                env.payload,
                msg_id=env.envelope_id,
                subject=settings.subject_for(env.organization_id),
            )
        await producer.flush()
    finally:
        await producer.close()
    return time.monotonic() - started


def generate(count: int, seed: int = SEED + 1) -> list[OutgoingEnvelope]:
    """``count`` synthetic envelopes made ahead, so publishing at a rate costs little CPU."""
    envelopes = SyntheticEnvelopes(seed=seed)
    return [envelopes.next() for _ in range(count)]


async def publish_at_rate(
    nc: Client,
    settings: NatsSettings,
    rate: float,
    envelopes: Sequence[OutgoingEnvelope],
    stop: asyncio.Event,
    on_sent: Callable[[OutgoingEnvelope, float], None],
) -> int:
    """Publish ``envelopes`` at ``rate``/s until ``stop`` is set or they run out.

    Core-NATS publishes with ``Nats-Msg-Id`` and no PubAck wait: the stream stores them all the
    same, and the publisher stays a small load next to the ingester on the same cores.
    ``on_sent(envelope, monotonic_time)`` is called as each one leaves. Paced in 5 ms ticks; a
    tick that falls behind catches up, so the average rate holds.
    """
    tick = 0.005
    started = time.monotonic()
    sent = 0
    total = len(envelopes)
    while not stop.is_set() and sent < total:
        due = min(total, int((time.monotonic() - started) * rate) + 1)
        while sent < due:
            env = envelopes[sent]
            await nc.publish(
                settings.subject_for(env.organization_id),
                env.payload,
                headers={NATS_MSG_ID: env.envelope_id},
            )
            on_sent(env, time.monotonic())
            sent += 1
        await asyncio.sleep(tick)
    await nc.flush()
    return sent
