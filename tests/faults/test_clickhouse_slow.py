"""Inserts slower than ``NATS_ACK_WAIT``: a TCP proxy in the test delays every chunk between the
ingester and ClickHouse, then forwards nothing for a while (hung), then heals.

The batches being inserted outlive ``ack_wait``, so the ingester must keep their messages with
``in_progress`` heartbeats: no message delivered twice, no nak, nothing in the DLQ, and 0 lost
after the proxy heals.

Settings, all about the scenario: short (``make test``), ``NATS_ACK_WAIT=3`` with +1 s per
chunk for 6 s (inserts of about 4 s), then hung 4 s. Long, ``ack_wait`` at its default 30 s
with +10 s per chunk for 5 min (inserts of 40 s and more), then hung 30 s;
``CLICKHOUSE_INSERT_TIMEOUT`` and ``CLICKHOUSE_SEND_RECEIVE_TIMEOUT`` are raised to 120 s so
that such an insert completes instead of being retried (at the default 30 s it would be timed
out and retried in place, never completing while the proxy is slow).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.faults.figures import Figures, record
from tests.faults.harness import (
    Background,
    Book,
    default_pipeline,
    drain_and_judge,
    overrides,
    service_rss,
)
from tests.faults.proxy import ChaosProxy
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher


async def slower_than_ack_wait(
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
    **settings: Any,
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
        **settings,
    )
    ack_wait = pipeline.nats.ack_wait
    figures = Figures(
        "inserts_slower_than_ack_wait",
        size,
        faults={"latency_s": latency, "slow_s": slow_for, "hung_s": hung_for, "rate": rate},
    )
    book = Book()
    try:
        async with PipelineClient.connect(pipeline, provision=True) as client:
            ingester = await launch.start(pipeline)
            figures.rss_start_mb = service_rss(ingester)
            rss: list[float] = []
            with Background(client, book, rate=rate, seed=4) as publishing:
                # Pacing the fault's phases: each lasts a fixed time.
                await asyncio.sleep(1.0)
                proxy.latency = latency
                until = time.monotonic() + slow_for
                while time.monotonic() < until:
                    rss.append(service_rss(ingester) or 0.0)
                    await asyncio.sleep(min(5.0, max(0.0, until - time.monotonic())))
                proxy.blackhole()
                await asyncio.sleep(hung_for)
                proxy.heal()
                await publishing.stop()
            outcome = await drain_and_judge(client, book, within=90 if size == "short" else 900)
            metrics = await ingester.metrics()
            figures.rss_end_mb = service_rss(ingester)
            await ingester.terminate()
            await client.delete_streams()
    finally:
        await proxy.close()
    figures.take_outcome(outcome, started)
    figures.rss_max_mb = max(rss, default=None)
    slowest = _slowest_insert(metrics.samples)
    figures.notes = {
        "ack_wait_s": ack_wait,
        "slowest_insert_bucket_s": slowest,
        "insert_timeouts": metrics.value("ponix_insert_failures_total", code="timeout"),
        "holds": metrics.value("ponix_holds_total"),
        "in_progress": outcome.settled.get("in_progress", 0),
        "proxy_connections": proxy.connections,
    }
    record(figures)
    verdict = outcome.verdict
    assert verdict.clean, verdict.summary()
    assert verdict.dead_lettered == 0, f"{verdict.dead_lettered} dead letters"
    assert slowest > ack_wait, "no insert outlived ack_wait: the fault did not bite"
    # Heartbeats keep what is being inserted: never a redelivery, never a nak.
    assert outcome.max_deliveries == 1, f"a message was delivered {outcome.max_deliveries} times"
    assert outcome.naks == 0, f"{outcome.naks} naks"
    assert overrides(pipeline).keys() <= {*settings, "NATS_ACK_WAIT"}


def _slowest_insert(samples: tuple[tuple[str, Any, float], ...]) -> float:
    """The upper bound of the highest ``ponix_insert_duration_seconds`` bucket that holds an insert
    (``inf`` when one took longer than the largest finite bucket, 30 s)."""
    counts = sorted(
        (float(labels["le"]), value)
        for name, labels, value in samples
        if name == "ponix_insert_duration_seconds_bucket"
    )
    total = max((v for _, v in counts), default=0.0)
    for bound, value in counts:
        if value >= total:
            return bound
    return 0.0


@pytest.mark.faults
async def test_inserts_slower_than_ack_wait_get_heartbeats_not_redeliveries(
    clickhouse_url: str, nats_url: str, clickhouse_db: str, unique: str, launch: ServiceLauncher
) -> None:
    await slower_than_ack_wait(
        clickhouse_url,
        nats_url,
        clickhouse_db,
        unique,
        launch,
        latency=1.0,
        slow_for=6.0,
        hung_for=4.0,
        rate=200,
        size="short",
        NATS_ACK_WAIT=3,
    )


@pytest.mark.faults_long
@pytest.mark.timeout(1200)
async def test_inserts_slower_than_ack_wait_for_5_minutes(
    clickhouse_url: str, nats_url: str, clickhouse_db: str, unique: str, launch: ServiceLauncher
) -> None:
    await slower_than_ack_wait(
        clickhouse_url,
        nats_url,
        clickhouse_db,
        unique,
        launch,
        latency=10.0,
        slow_for=300.0,
        hung_for=30.0,
        rate=300,
        size="long",
        CLICKHOUSE_INSERT_TIMEOUT=120,
        CLICKHOUSE_SEND_RECEIVE_TIMEOUT=120,
    )
