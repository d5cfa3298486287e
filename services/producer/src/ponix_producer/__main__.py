"""``ponix-producer``: publish synthetic envelopes to JetStream."""

from __future__ import annotations

from collections.abc import Sequence

from ponix_config import NatsSettings, TelemetrySettings, load_settings
from ponix_producer.producer import Producer
from ponix_producer.settings import ProducerSettings
from ponix_runner import RunResult, run_main
from ponix_telemetry import Component, configure_logging, serve


async def _main() -> RunResult:
    telemetry = load_settings(TelemetrySettings)
    configure_logging(telemetry)
    nats = load_settings(NatsSettings)
    settings = load_settings(ProducerSettings)

    async def start() -> Sequence[Component]:
        return [await Producer.start(nats, settings)]

    return await serve("producer", start, telemetry)


def main() -> None:
    raise SystemExit(run_main(_main))


if __name__ == "__main__":
    main()
