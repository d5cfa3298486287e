"""Scenario 9: the ingester's ClickHouse user turns readonly for a while, then writable again
(users.xml swapped on a dedicated server with a password user).

ClickHouse applies a profile change to *new* logins only (18.16: a native connection keeps the
settings it logged in with). So the phases are:

1. readonly while the ingester holds writable connections: observed and recorded, not asserted
   (inserts keep working on the old connections);
2. the ingester restarted while readonly (INGESTER_MIGRATE=false: yoyo's lock row is an insert
   too): its logins are readonly, inserts fail with code 164 and are nakked (``readonly``,
   transient);
3. writable again: the ingester must recover on its own, with nothing lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ponix_devstack import ClickHouseServer, ClickHouseUser
from tests.faults.figures import Figures, record
from tests.faults.harness import Book, default_pipeline, drain_and_judge, service_rss
from tests.support.pipeline import PipelineClient, ServiceLauncher, eventually

WRITER = ClickHouseUser("writer", "writer-pw")


async def readonly_for_a_while(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
    *,
    messages: int,
    readonly_for: float,
    size: str,
) -> None:
    started = time.monotonic()
    server = clickhouse_server_factory(users=[ClickHouseUser("default"), WRITER])
    pipeline = default_pipeline(
        nats_url=nats_url,
        clickhouse_url=server.url_for("writer"),
        unique=unique,
        database="ponix",
    )
    figures = Figures("readonly_user", size, faults={"readonly_s": readonly_for})
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        book.add(await client.publish_synthetic(messages, seed=90))
        await client.wait_until_drained(within=30)

        # Phase 1: readonly under the ingester's feet (its connections predate the change).
        await asyncio.to_thread(server.set_readonly, "writer")
        book.add(await client.publish_synthetic(messages, seed=91))
        await asyncio.sleep(0.5)
        phase1 = await ingester.metrics()

        # Phase 2: restarted while readonly; every login now is readonly.
        await ingester.terminate()
        ingester = await launch.start(pipeline, name="ingester-readonly", INGESTER_MIGRATE="false")
        book.add(await client.publish_synthetic(messages, seed=92))

        async def refused() -> float:
            metrics = await ingester.metrics()
            return metrics.value("ponix_insert_failures_total", code="readonly")

        await eventually(refused, within=20, what="an insert refused as readonly")
        await asyncio.sleep(readonly_for)
        phase2 = await ingester.metrics()

        # Phase 3: writable again; the same ingester must get going by itself.
        await asyncio.to_thread(server.set_readonly, "writer", readonly=False)
        writable_at = time.monotonic()
        book.add(await client.publish_synthetic(messages, seed=93))
        try:
            outcome = await drain_and_judge(client, book, within=45 if size == "short" else 600)
        finally:
            figures.notes = {
                "phase1_readonly_failures": phase1.value(
                    "ponix_insert_failures_total", code="readonly"
                ),
                "phase2_readonly_failures": phase2.value(
                    "ponix_insert_failures_total", code="readonly"
                ),
                "phase2_nakked": phase2.value("ponix_envelopes_nakked_total"),
                "recovery_s": round(time.monotonic() - writable_at, 2),
            }
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()


@pytest.mark.faults
async def test_readonly_user_naks_then_resumes_when_writable(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await readonly_for_a_while(
        clickhouse_server_factory,
        nats_url,
        unique,
        launch,
        messages=200,
        readonly_for=1.0,
        size="short",
    )


@pytest.mark.faults_long
@pytest.mark.timeout(600)
async def test_readonly_user_for_minutes(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    await readonly_for_a_while(
        clickhouse_server_factory,
        nats_url,
        unique,
        launch,
        messages=5000,
        readonly_for=120.0,
        size="long",
    )
