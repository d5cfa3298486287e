"""The ingester component: migrations, ClickHouse, NATS, then consumer + writer under a runner.

Start-up (docs/architecture.md, "Start-up"): migrations, ClickHouse ping, NATS connect and
provisioning. Each
waits for its server with backoff (as after a host reboot) until ``startup_deadline``.
Shutdown: the consumer stops fetching and waits for its in-flight batches, which the writer
stores (latency flushes keep running) so they are acked; then the closers flush what is left,
drain NATS and close ClickHouse, in that order.

One process does it all; more throughput comes from more replicas on the same durable consumer
(bench/README.md has the figures that decided against worker processes).

``ponix_clickhouse_up`` comes from a ping every few seconds (and from each readiness probe), so
it says whether ClickHouse answers even while nothing is inserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from clickhouse_driver import Client as ClickHouseClient
from nats.aio.client import Client as NatsClient

from ponix_clickhouse import (
    BatchWriter,
    ClickHouseError,
    ClickHouseUnavailableError,
    RowBuilder,
    TableLayout,
    TimeRange,
    make_client,
    migrate,
    ping,
    read_table_layout,
    server_version,
)
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_ingest import EnvelopeProcessor
from ponix_ingester.settings import IngesterSettings
from ponix_nats import BatchConsumer, NatsUnavailableError, connect, ensure_jetstream
from ponix_runner import Deadline, Runner, ShutdownSignal, wait_until_available
from ponix_telemetry import ReadinessCheck, get_logger, metrics

log = get_logger(__name__)

# Seconds between the pings behind ponix_clickhouse_up; as often as the consumer's gauges.
CLICKHOUSE_PROBE_INTERVAL: Final = 5.0


@dataclass
class Ingester:
    """A started ingester, ready to be registered with a runner."""

    nc: NatsClient
    consumer: BatchConsumer
    writer: BatchWriter
    probe: ClickHouseClient
    layout: TableLayout
    clickhouse: ClickHouseSettings

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
            # Its subjects: acks to the server's reply subjects, pull requests and the DLQ
            # subject, all from validated settings.
            lambda: connect(nats, name=client_name, trusted_subjects=True),
            retry_on=(NatsUnavailableError,),
            deadline=deadline,
        )
        js = nc.jetstream()
        try:
            await ensure_jetstream(js, nats)
            time_range = TimeRange.for_column_type(
                layout.type_of("occurred_at"), layout.time_scale("occurred_at")
            )
            writer = BatchWriter(
                clickhouse,
                layout.columns,
                server_version=layout.server_version,
                layout=layout,
                # Rows given back at shutdown leave time to settle them within the grace period.
                shutdown_timeout=settings.shutdown_grace / 2,
            )
            builder = RowBuilder(
                max_bytes=settings.max_envelope_bytes,
                time_range=time_range,
                subject_for=None if settings.trust_payload_org else nats.subject_for,
            )
            consumer = BatchConsumer(
                nc,
                nats,
                EnvelopeProcessor(builder, writer),
                js=js,
                max_in_flight_bytes=clickhouse.max_in_flight_bytes,
            )
        except BaseException:
            await nc.close()
            raise
        log.info(
            "ingester ready",
            table=f"{clickhouse.database}.{clickhouse.table}",
            server_version=".".join(map(str, layout.server_version)),
            stream=nats.stream,
            consumer=nats.consumer,
        )
        return cls(nc, consumer, writer, probe, layout, clickhouse)

    def register(self, runner: Runner) -> None:
        runner.add_process("consumer", self.consumer.run)
        runner.add_process("clickhouse probe", self._probe_clickhouse, critical=False)
        runner.add_process("writer", self.writer.run)
        runner.add_closer("flush writer", self.writer.close, timeout=5.0)
        runner.add_closer("drain nats", self.nc.drain, timeout=3.0)
        runner.add_closer("close clickhouse", self._close_probe, timeout=1.0)

    def readiness(self) -> Mapping[str, ReadinessCheck]:
        async def nats_connected() -> bool:
            return self.nc.is_connected

        async def clickhouse_reachable() -> bool:
            return await self._clickhouse_answers()

        async def clickhouse_storing() -> bool:
            # False while a writer holds a batch that ClickHouse refuses, even if it answers.
            return not self.writer.holding

        checks: dict[str, ReadinessCheck] = {
            "nats": nats_connected,
            "clickhouse": clickhouse_reachable,
            "clickhouse_inserts": clickhouse_storing,
        }
        return checks

    async def _clickhouse_answers(self) -> bool:
        """One ping, recorded in ``ponix_clickhouse_up``."""
        # A client of its own per ping: a ping abandoned at its timeout may still be using one
        # in its thread, and a client is not thread-safe.
        client = make_client(self.clickhouse)
        try:
            await ping(client)
        except ClickHouseError as exc:
            metrics.CLICKHOUSE_UP.set(0)
            log.debug("clickhouse ping failed", error=str(exc))
            return False
        finally:
            await asyncio.to_thread(client.disconnect)
        metrics.CLICKHOUSE_UP.set(1)
        return True

    async def _probe_clickhouse(self, token: ShutdownSignal) -> None:
        """Ping ClickHouse every :data:`CLICKHOUSE_PROBE_INTERVAL` seconds until shutdown."""
        stop = asyncio.ensure_future(token.wait())
        try:
            while not stop.done():
                probe = asyncio.ensure_future(self._clickhouse_answers())
                await asyncio.wait((probe, stop), return_when=asyncio.FIRST_COMPLETED)
                if not probe.done():
                    probe.cancel()
                    return
                probe.result()
                await asyncio.wait((stop,), timeout=CLICKHOUSE_PROBE_INTERVAL)
        finally:
            stop.cancel()

    async def _close_probe(self) -> None:
        await asyncio.to_thread(self.probe.disconnect)
