"""Scenario 3: ClickHouse goes away for a while under continuous publishing (a dedicated server,
stopped and started on the same data directory).

During the outage the ingester naks with backoff (no hot loop), pauses fetching (in-flight rows
stay under CLICKHOUSE_MAX_IN_FLIGHT_ROWS, unacked messages under NATS_MAX_ACK_PENDING) and its
RSS stays flat; after it, the lag goes back to zero with nothing lost or duplicated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ponix_devstack import ClickHouseServer
from tests.faults.figures import Figures, record
from tests.faults.harness import Background, Book, default_pipeline, drain_and_judge, service_rss
from tests.support.pipeline import PipelineClient, ServiceLauncher

MAX_IN_FLIGHT_ROWS = 4000
MAX_ACK_PENDING = 6000


async def clickhouse_outage(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
    *,
    outage: float,
    rate: float,
    size: str,
    kill: bool,
) -> None:
    started = time.monotonic()
    clickhouse = clickhouse_server_factory()
    pipeline = default_pipeline(
        nats_url=nats_url,
        clickhouse_url=clickhouse.url,
        unique=unique,
        database="ponix",
        CLICKHOUSE_MAX_IN_FLIGHT_ROWS=MAX_IN_FLIGHT_ROWS,
        CLICKHOUSE_BATCH_MAX_ROWS=1000,
        NATS_MAX_ACK_PENDING=MAX_ACK_PENDING,
    )
    figures = Figures(
        "clickhouse_outage",
        size,
        faults={"outage_s": outage, "how": "SIGKILL" if kill else "SIGTERM", "rate": rate},
    )
    book = Book()
    samples: list[tuple[float, float, float]] = []  # (rss, in-flight rows, ack pending)
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        with Background(client, book, rate=rate, seed=3) as publishing:
            await asyncio.sleep(1.0)
            figures.rss_start_mb = service_rss(ingester)
            # stop() waits for ClickHouse's graceful shutdown: not on the event loop.
            await asyncio.to_thread(clickhouse.kill if kill else clickhouse.stop)
            down_until = time.monotonic() + outage
            while time.monotonic() < down_until:
                metrics = await ingester.metrics()
                info = await client.consumer_info()
                samples.append(
                    (
                        service_rss(ingester) or 0.0,
                        metrics.value("ponix_in_flight_rows"),
                        float(info.num_ack_pending),
                    )
                )
                await asyncio.sleep(min(1.0, outage / 8))
            during = await ingester.metrics()
            clickhouse.start()
            back_at = time.monotonic()
            await publishing.stop()
        outcome = await drain_and_judge(client, book, within=90 if size == "short" else 600)
        recovery = time.monotonic() - back_at
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take(outcome.verdict)
    figures.rss_max_mb = max(s[0] for s in samples)
    figures.redeliveries = outcome.redeliveries
    figures.duration_s = time.monotonic() - started
    nakked = during.value("ponix_envelopes_nakked_total")
    failed_inserts = during.value("ponix_insert_failures_total")
    figures.notes = {
        "recovery_s": round(recovery, 2),
        "max_in_flight_rows": max(s[1] for s in samples),
        "max_ack_pending": max(s[2] for s in samples),
        "nakked_during": nakked,
        "failed_inserts_during": failed_inserts,
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert nakked > 0, "nothing was nakked while ClickHouse was down"
    # Backoff, not a hot loop: probes and inserts at most every ~0.5 s and doubling.
    assert failed_inserts <= 20 + outage, f"{failed_inserts} failed inserts in {outage}s"
    assert max(s[1] for s in samples) <= MAX_IN_FLIGHT_ROWS
    assert max(s[2] for s in samples) <= MAX_ACK_PENDING
    assert figures.rss_max_mb is not None
    assert figures.rss_start_mb is not None
    assert figures.rss_max_mb - figures.rss_start_mb < 40, "RSS grew during the outage"


@pytest.mark.faults
async def test_clickhouse_down_naks_with_backoff_and_loses_nothing(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await clickhouse_outage(
        clickhouse_server_factory,
        nats_url,
        unique,
        launch,
        outage=8.0,
        rate=300,
        size="short",
        kill=True,
    )


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_clickhouse_down_for_5_minutes(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await clickhouse_outage(
        clickhouse_server_factory,
        nats_url,
        unique,
        launch,
        outage=300.0,
        rate=300,
        size="long",
        kill=False,
    )
