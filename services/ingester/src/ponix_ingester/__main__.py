"""``ponix-ingester``: JetStream to ClickHouse."""

from __future__ import annotations

from collections.abc import Sequence

from ponix_config import ClickHouseSettings, NatsSettings, load_settings
from ponix_ingester.ingester import Ingester
from ponix_ingester.settings import IngesterSettings
from ponix_runner import RunResult
from ponix_service import Component, ServiceCommand, serve

COMMAND = ServiceCommand(
    "ponix-ingester",
    "Store the envelopes of a JetStream stream in ClickHouse: one row per envelope, acked once\n"
    "its insert succeeded, dead-lettered only for a fault of its own (undecodable, invalid, too\n"
    "large, on another organization's subject, a row ClickHouse rejects). Whatever ClickHouse\n"
    "does wrong is held and retried in place, never dead-lettered. NATS_MAX_DELIVER counts only\n"
    "deliveries that failed for the message's own sake (a processor crash), never a store\n"
    "failure.",
    variables="NATS_*, CLICKHOUSE_*, INGESTER_*",
)


async def _main() -> RunResult:
    telemetry = COMMAND.start_logging([NatsSettings, ClickHouseSettings, IngesterSettings])
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings)
    settings = load_settings(IngesterSettings)

    async def start() -> Sequence[Component]:
        return [await Ingester.start(nats, clickhouse, settings)]

    return await serve(start, telemetry, grace=settings.shutdown_grace)


def main() -> None:
    COMMAND.run(_main)


if __name__ == "__main__":
    main()
