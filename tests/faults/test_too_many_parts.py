"""Scenario 8: ClickHouse refuses inserts with "Too many parts" (code 252).

The table is created by the test with a low ``parts_to_throw_insert`` (18.16 has no ``ALTER
TABLE ... MODIFY SETTING``, so it is in the DDL, and the ingester runs with
INGESTER_MIGRATE=false), and merges are stopped (``SYSTEM STOP MERGES db.table``). Every insert
adds a part until the server refuses: the ingester naks with backoff and loses nothing. After
``SYSTEM START MERGES`` the parts merge and the backlog goes in.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.faults.figures import Figures, record
from tests.faults.harness import Background, Book, drain_and_judge, service_rss
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

MAX_PARTS = 8


def ddl(table: str) -> str:
    # Columns as migration 0001 makes them on 18.16; the settings are the point.
    # parts_to_delay_insert must not exceed parts_to_throw_insert: 18.16 only checks the throw
    # threshold once the delay threshold is reached.
    return (
        f"CREATE TABLE {table} (`id` String, `organization_id` String, `end_device_id` String, "
        "`occurred_at` DateTime('UTC'), `processed_at` DateTime('UTC'), `data` String) "
        "ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(`occurred_at`) "
        "ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`) "
        f"SETTINGS parts_to_throw_insert = {MAX_PARTS}, parts_to_delay_insert = {MAX_PARTS}"
    )


async def too_many_parts(
    pipeline: Pipeline, launch: ServiceLauncher, *, refused_for: float, rate: float, size: str
) -> None:
    started = time.monotonic()
    pipeline = pipeline.with_env(INGESTER_MIGRATE="false", CLICKHOUSE_BATCH_MAX_LATENCY=0.02)
    figures = Figures(
        "too_many_parts",
        size,
        faults={"parts_to_throw_insert": MAX_PARTS, "refused_s": refused_for},
    )
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        table = pipeline.table
        await client.query(ddl(table))
        await client.query(f"SYSTEM STOP MERGES {table}")
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        with Background(client, book, rate=rate, chunk=50, seed=8) as publishing:

            async def refused() -> float:
                metrics = await ingester.metrics()
                return metrics.value("ponix_insert_failures_total", code="too_many_parts")

            await eventually(refused, within=30, what="an insert refused with too many parts")
            await asyncio.sleep(refused_for)
            during = await ingester.metrics()
            await client.query(f"SYSTEM START MERGES {table}")
            merging_at = time.monotonic()
            await publishing.stop()
        outcome = await drain_and_judge(client, book, within=90 if size == "short" else 600)
        recovered = time.monotonic() - merging_at
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    failures = during.value("ponix_insert_failures_total", code="too_many_parts")
    figures.notes = {
        "recovery_s": round(recovered, 2),
        "refused_inserts": failures,
        "nakked": during.value("ponix_envelopes_nakked_total"),
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert failures <= 10 + refused_for, f"{failures} refused inserts: not backing off"


@pytest.mark.faults
async def test_too_many_parts_backs_off_and_recovers_after_merges(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    await too_many_parts(pipeline, launch, refused_for=2.0, rate=200, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(600)
async def test_too_many_parts_for_minutes(pipeline: Pipeline, launch: ServiceLauncher) -> None:
    await too_many_parts(pipeline, launch, refused_for=120.0, rate=500, size="long")
