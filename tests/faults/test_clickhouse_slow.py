"""Scenario 4: ClickHouse gets slow, then hangs (a TCP proxy in the test adds latency to every
chunk, then forwards nothing), then heals; NATS_ACK_WAIT is short (3 s).

Inserts outlive ack_wait, so the ingester must keep its messages with ``in_progress``
heartbeats: few or no redeliveries (no storm), and 0 lost after the proxy heals.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.figures import Figures, record
from tests.faults.harness import Background, Book, default_pipeline, drain_and_judge, service_rss
from tests.faults.proxy import ChaosProxy
from tests.support.pipeline import PipelineClient, ServiceLauncher

ACK_WAIT = 3


async def slow_then_hung(
    clickhouse_url: str,
    nats_url: str,
    clickhouse_db: str,
    unique: str,
    launch: ServiceLauncher,
    *,
    latency: float,
    slow_for: float,
    hung_for: float,
    rate: float,
    size: str,
) -> None:
    started = time.monotonic()
    real = clickhouse_url.split("@", 1)[1].split("/", 1)[0]
    host, port = real.rsplit(":", 1)
    proxy = await ChaosProxy(host, int(port)).start()
    pipeline = default_pipeline(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url.replace(real, f"127.0.0.1:{proxy.port}"),
        unique=unique,
        database=clickhouse_db,
        NATS_ACK_WAIT=ACK_WAIT,
        # Longer than the hang: the insert that hangs completes when the proxy heals.
        CLICKHOUSE_INSERT_TIMEOUT=hung_for + 20,
        CLICKHOUSE_SEND_RECEIVE_TIMEOUT=hung_for + 20,
    )
    figures = Figures(
        "clickhouse_slow_then_hung",
        size,
        faults={"latency_s": latency, "slow_s": slow_for, "hung_s": hung_for, "ack_wait": 3},
    )
    book = Book()
    try:
        async with PipelineClient.connect(pipeline, provision=True) as client:
            ingester = await launch.start(pipeline)
            figures.rss_start_mb = service_rss(ingester)
            with Background(client, book, rate=rate, seed=4) as publishing:
                await asyncio.sleep(0.5)
                proxy.latency = latency
                await asyncio.sleep(slow_for)
                proxy.blackhole()
                await asyncio.sleep(hung_for)
                proxy.heal()
                await publishing.stop()
            outcome = await drain_and_judge(client, book, within=90 if size == "short" else 600)
            metrics = await ingester.metrics()
            figures.rss_end_mb = service_rss(ingester)
            await ingester.terminate()
            await client.delete_streams()
    finally:
        await proxy.close()
    figures.take_outcome(outcome, started)
    slowest = _slowest_insert(metrics.samples)
    figures.notes = {
        "slowest_insert_bucket_s": slowest,
        "nakked": metrics.value("ponix_envelopes_nakked_total"),
        "proxy_connections": proxy.connections,
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert slowest > ACK_WAIT, "no insert outlived ack_wait: the fault did not bite"
    # Heartbeats keep what is being inserted: at most a few redeliveries, not the backlog.
    assert outcome.redeliveries <= max(10, outcome.verdict.published // 50), (
        f"{outcome.redeliveries} redeliveries of {outcome.verdict.published}"
    )


def _slowest_insert(samples: tuple[tuple[str, object, float], ...]) -> float:
    """The upper bound of the highest ``ponix_insert_duration_seconds`` bucket holding an insert."""
    counts = sorted(
        (float(labels["le"]), value)  # type: ignore[index]
        for name, labels, value in samples
        if name == "ponix_insert_duration_seconds_bucket" and labels["le"] != "+Inf"  # type: ignore[index]
    )
    total = max((v for _, v in counts), default=0.0)
    for bound, value in counts:
        if value >= total:
            return bound
    return float("inf")


@pytest.mark.faults
async def test_slow_then_hung_clickhouse_gets_heartbeats_not_redeliveries(
    clickhouse_url: str, nats_url: str, clickhouse_db: str, unique: str, launch: ServiceLauncher
) -> None:
    await slow_then_hung(
        clickhouse_url,
        nats_url,
        clickhouse_db,
        unique,
        launch,
        latency=1.0,
        slow_for=4.0,
        hung_for=4.0,
        rate=200,
        size="short",
    )


@pytest.mark.faults_long
@pytest.mark.timeout(600)
async def test_slow_then_hung_clickhouse_for_minutes(
    clickhouse_url: str, nats_url: str, clickhouse_db: str, unique: str, launch: ServiceLauncher
) -> None:
    await slow_then_hung(
        clickhouse_url,
        nats_url,
        clickhouse_db,
        unique,
        launch,
        latency=2.0,
        slow_for=60.0,
        hung_for=60.0,
        rate=500,
        size="long",
    )
