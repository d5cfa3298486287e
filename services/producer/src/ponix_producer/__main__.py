"""``ponix-producer``: publish synthetic envelopes to JetStream."""

from __future__ import annotations

from collections.abc import Sequence

from ponix_config import NatsSettings, load_settings
from ponix_producer.producer import Producer
from ponix_producer.settings import ProducerSettings
from ponix_runner import RunResult
from ponix_service import Component, ServiceCommand, serve

COMMAND = ServiceCommand(
    "ponix-producer",
    "Publish synthetic envelopes to JetStream at a steady rate (PRODUCER_RATE per second),\n"
    "forever or PRODUCER_COUNT of them.",
    variables="NATS_*, PRODUCER_*",
)


async def _main() -> RunResult:
    telemetry = COMMAND.start_logging([NatsSettings, ProducerSettings])
    nats = load_settings(NatsSettings)
    settings = load_settings(ProducerSettings)

    async def start() -> Sequence[Component]:
        return [await Producer.start(nats, settings)]

    return await serve(start, telemetry)


def main() -> None:
    COMMAND.run(_main)


if __name__ == "__main__":
    main()
