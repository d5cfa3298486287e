"""The ingester component: migrations, ClickHouse, NATS, then consumer + writer under a runner.

Start-up follows DESIGN §1: migrations, ClickHouse ping, NATS connect and provisioning. Each
waits for its server with backoff (as after a host reboot) until ``startup_deadline``.
Shutdown: the consumer stops fetching and waits for its in-flight batches, which the writer
stores (latency flushes keep running) so they are acked; then the closers flush what is left,
drain NATS and close ClickHouse, in that order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from clickhouse_driver import Client as ClickHouseClient
from nats.aio.client import Client as NatsClient

from ponix_clickhouse import (
    BatchWriter,
    ClickHouseUnavailableError,
    TableLayout,
    make_client,
    migrate,
    ping,
    read_table_layout,
    server_version,
)
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_ingester.processor import EnvelopeProcessor
from ponix_ingester.rows import RowBuilder, TimeRange
from ponix_ingester.settings import IngesterSettings
from ponix_nats import BatchConsumer, NatsUnavailableError, connect, ensure_jetstream
from ponix_runner import Deadline, Runner, wait_until_available
from ponix_telemetry import ReadinessCheck, get_logger

log = get_logger(__name__)


@dataclass
class Ingester:
    """A started ingester, ready to be registered with a runner."""

    nc: NatsClient
    consumer: BatchConsumer
    writer: BatchWriter
    probe: ClickHouseClient
    layout: TableLayout

    @classmethod
    async def start(
        cls,
        nats: NatsSettings,
        clickhouse: ClickHouseSettings,
        settings: IngesterSettings,
        *,
        client_name: str = "ponix-ingester",
    ) -> Ingester:
        deadline = Deadline.after(settings.startup_deadline)
        down = (ClickHouseUnavailableError,)
        if settings.migrate:
            report = await wait_until_available(
                "clickhouse",
                lambda: asyncio.to_thread(migrate, clickhouse),
                retry_on=down,
                deadline=deadline,
            )
            log.info("migrations done", applied=list(report.applied))
        probe = make_client(clickhouse)
        await wait_until_available(
            "clickhouse", lambda: ping(probe), retry_on=down, deadline=deadline
        )
        layout = await asyncio.to_thread(
            read_table_layout,
            probe,
            clickhouse.database,
            clickhouse.table,
            server_version=await asyncio.to_thread(server_version, probe),
        )
        nc = await wait_until_available(
            "nats",
            lambda: connect(nats, name=client_name),
            retry_on=(NatsUnavailableError,),
            deadline=deadline,
        )
        js = nc.jetstream()
        await ensure_jetstream(js, nats)
        writer = BatchWriter(clickhouse, layout.columns, dedup_tokens=layout.dedup_tokens)
        builder = RowBuilder(
            max_bytes=settings.max_envelope_bytes,
            time_range=TimeRange.for_column_type(
                layout.type_of("occurred_at"), layout.time_scale("occurred_at")
            ),
        )
        consumer = BatchConsumer(nc, nats, EnvelopeProcessor(builder, writer), js=js)
        log.info(
            "ingester ready",
            table=f"{clickhouse.database}.{clickhouse.table}",
            server_version=".".join(map(str, layout.server_version)),
            stream=nats.stream,
            consumer=nats.consumer,
        )
        return cls(nc, consumer, writer, probe, layout)

    def register(self, runner: Runner) -> None:
        runner.add_process("consumer", self.consumer.run)
        runner.add_process("writer", self.writer.run)
        runner.add_closer("flush writer", self.writer.close, timeout=5.0)
        runner.add_closer("drain nats", self.nc.drain, timeout=3.0)
        runner.add_closer("close clickhouse", self._close_probe, timeout=1.0)

    def readiness(self) -> Mapping[str, ReadinessCheck]:
        async def nats_connected() -> bool:
            return self.nc.is_connected

        async def clickhouse_reachable() -> bool:
            await ping(self.probe)
            return True

        return {"nats": nats_connected, "clickhouse": clickhouse_reachable}

    async def _close_probe(self) -> None:
        await asyncio.to_thread(self.probe.disconnect)
