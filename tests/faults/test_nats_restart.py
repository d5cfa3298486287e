"""Scenario 5: nats-server SIGKILLed under continuous publishing and started again on the same
store (a dedicated server, file storage with ``sync_interval: always``).

The ingester reconnects and carries on; the publisher resends its own unconfirmed publishes
under the same ``Nats-Msg-Id``. Every PubAck'd envelope ends up stored, once.

Settings: the long run is at the shipped defaults. The short one (``make test``) sets
``NATS_ACK_WAIT=5``: a delivery whose ack died with the server comes back 5 s later instead of
30, which changes when, not whether, it is stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ponix_devstack import NatsServer
from tests.faults.figures import Figures, record
from tests.faults.harness import Background, Book, default_pipeline, drain_and_judge, service_rss
from tests.support.pipeline import PipelineClient, ServiceLauncher


async def nats_restarts(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_url: str,
    clickhouse_db: str,
    unique: str,
    launch: ServiceLauncher,
    *,
    restarts: int,
    down_for: float,
    rate: float,
    size: str,
) -> None:
    started = time.monotonic()
    server = nats_server_factory()
    pipeline = default_pipeline(
        nats_url=server.url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=clickhouse_db,
        **({"NATS_ACK_WAIT": 5} if size == "short" else {}),
    )
    figures = Figures(
        "nats_sigkill_restart",
        size,
        faults={"restarts": restarts, "down_s": down_for, "rate": rate},
    )
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        with Background(client, book, rate=rate, seed=5, ack_timeout=60) as publishing:
            for _ in range(restarts):
                await asyncio.sleep(1.5)
                server.kill()
                await asyncio.sleep(down_for)
                server.start()
            await asyncio.sleep(1.0)
            await publishing.stop()
        outcome = await drain_and_judge(client, book, within=90 if size == "short" else 900)
        figures.rss_end_mb = service_rss(ingester)
        reconnects = len(ingester.events("nats client error"))
        exit_ = await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.notes = {
        "unconfirmed": len(book.unconfirmed),
        "client_error_lines": reconnects,
        "ingester_exit": exit_.code,
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert ingester.returncode == 0, "the ingester did not survive the NATS restart"


@pytest.mark.faults
async def test_nats_sigkill_and_restart_loses_nothing(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_url: str,
    clickhouse_db: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await nats_restarts(
        nats_server_factory,
        clickhouse_url,
        clickhouse_db,
        unique,
        launch,
        restarts=1,
        down_for=2.0,
        rate=300,
        size="short",
    )


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_nats_sigkill_and_restart_repeatedly(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_url: str,
    clickhouse_db: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await nats_restarts(
        nats_server_factory,
        clickhouse_url,
        clickhouse_db,
        unique,
        launch,
        restarts=20,
        down_for=3.0,
        rate=1000,
        size="long",
    )
