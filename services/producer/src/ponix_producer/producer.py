"""The producer component: connects, checks the stream, publishes envelopes at a rate.

It never creates or changes the stream (the ingester or ``ponix provision`` does): it waits
for the stream within its start-up deadline, and logs settings that differ from it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from nats.aio.client import Client

from ponix_config import NatsSettings
from ponix_nats import (
    EnvelopeProducer,
    NatsUnavailableError,
    StreamMissingError,
    TopologyCheck,
    check_jetstream,
    connect,
)
from ponix_producer.settings import ProducerSettings
from ponix_producer.synthetic import SyntheticEnvelopes
from ponix_runner import Deadline, Runner, ShutdownToken, wait_until_available
from ponix_telemetry import ReadinessCheck, get_logger

log = get_logger(__name__)

# Publishing in ticks keeps a high rate cheap (one sleep per tick, not per envelope).
_TICK = 0.02


@dataclass
class Producer:
    """A started producer, ready to be registered with a runner."""

    nc: Client
    publisher: EnvelopeProducer
    settings: ProducerSettings

    @classmethod
    async def start(cls, nats: NatsSettings, settings: ProducerSettings) -> Producer:
        deadline = Deadline.after(settings.startup_deadline)

        async def connected() -> Client:
            return await connect(nats, name="ponix-producer")

        nc = await wait_until_available(
            "nats", connected, retry_on=(NatsUnavailableError,), deadline=deadline
        )
        js = nc.jetstream()

        async def stream_exists() -> TopologyCheck:
            return (await check_jetstream(js, nats)).require_stream()

        try:
            check = await wait_until_available(
                "nats stream", stream_exists, retry_on=(StreamMissingError,), deadline=deadline
            )
        except BaseException:
            await nc.close()
            raise
        if not check.ok:
            log.warning("jetstream differs from the settings, left as is", drift=check.summary())
        publisher = EnvelopeProducer(nc, nats, max_in_flight=settings.max_in_flight)
        return cls(nc, publisher, settings)

    def register(self, runner: Runner) -> None:
        runner.add_process("producer", self.run, may_return=self.settings.count > 0)
        runner.add_closer("flush publishes", self.publisher.flush, timeout=5.0)
        runner.add_closer("drain nats (producer)", self.nc.drain, timeout=5.0)

    def readiness(self) -> Mapping[str, ReadinessCheck]:
        async def nats_connected() -> bool:
            return self.nc.is_connected

        return {"nats (producer)": nats_connected}

    async def run(self, token: ShutdownToken) -> None:
        """Publish at ``rate`` until ``count`` envelopes are out or shutdown is requested."""
        settings = self.settings
        fleet = SyntheticEnvelopes(organizations=settings.organizations, devices=settings.devices)
        nats = self.publisher
        started = time.monotonic()
        sent = 0
        limit = settings.count or None
        log.info("producer publishing", rate=settings.rate, count=settings.count)
        while not token.is_set and (limit is None or sent < limit):
            due = int((time.monotonic() - started) * settings.rate) + 1
            if limit is not None:
                due = min(due, limit)
            while sent < due and not token.is_set:
                envelope = fleet.next()
                await nats.send_envelope(
                    envelope.payload,
                    envelope_id=envelope.envelope_id,
                    organization_id=envelope.organization_id,
                )
                sent += 1
            if limit is not None and sent >= limit:
                break
            next_at = started + (sent / settings.rate)
            if await token.sleep(max(next_at - time.monotonic(), _TICK)):
                break
        await nats.flush()
        log.info("producer stopped", published=sent)
