"""``ponix-ingester``: JetStream to ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from ponix_config import ClickHouseSettings, NatsSettings, TelemetrySettings, load_settings
from ponix_ingester.ingester import Ingester
from ponix_ingester.settings import IngesterSettings
from ponix_runner import RunResult, run_main
from ponix_telemetry import Component, configure_logging, serve


async def _main() -> RunResult:
    telemetry = load_settings(TelemetrySettings)
    configure_logging(telemetry)
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings)
    settings = load_settings(IngesterSettings)

    async def start() -> Sequence[Component]:
        return [await Ingester.start(nats, clickhouse, settings)]

    return await serve("ingester", start, telemetry, grace=settings.shutdown_grace)


def main() -> None:
    raise SystemExit(run_main(_main))


if __name__ == "__main__":
    main()
