"""ClickHouse refuses inserts with TOO_MANY_PARTS (252) while merges are stopped.

The table is created by the test with a low ``parts_to_throw_insert`` (18.16 has no ``ALTER
TABLE ... MODIFY SETTING``, so it is in the DDL, and the ingester runs with
INGESTER_MIGRATE=false). ``SYSTEM STOP MERGES`` makes every insert add a part until the server
refuses; the writer holds its batch and retries it in place. After ``SYSTEM START MERGES`` the
parts merge and the held batch, then the backlog, go in: nothing nakked, redelivered or
dead-lettered.

Settings: the shipped defaults (the table's own thresholds are the fault). Short: refused for
5 s (``make test``); long: 5 min.
"""

from __future__ import annotations

import pytest

from tests.faults.refusal import Fault, assert_held_in_place, failed_for, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher

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
    client: PipelineClient,
    launch: ServiceLauncher,
    *,
    refused_for: float,
    rate: float,
    size: str,
) -> None:
    pipeline = client.pipeline.with_env(INGESTER_MIGRATE="false")
    table = pipeline.table
    await client.query(f"CREATE DATABASE IF NOT EXISTS `{pipeline.database}`")
    await client.query(ddl(table))
    fault = Fault(
        refuse=lambda: client.query(f"SYSTEM STOP MERGES {table}"),
        restore=lambda: client.query(f"SYSTEM START MERGES {table}"),
    )
    run = await refusal(
        client,
        launch,
        scenario="too_many_parts",
        size=size,
        fault=fault,
        refused_for=refused_for,
        rate=rate,
        chunk=50,
        seed=8,
        faults={"parts_to_throw_insert": MAX_PARTS},
        pipeline=pipeline,
    )
    assert_held_in_place(run)
    assert failed_for(run, "too_many_parts") > 0, run.figures.notes["failed_by_reason"]
    failures = run.figures.notes["failed_inserts"]
    assert failures <= 2 * (8 + refused_for / 20), f"{failures} refused inserts: no backoff"


@pytest.mark.faults
async def test_too_many_parts_is_held_in_place_until_merges_catch_up(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await too_many_parts(client, launch, refused_for=5.0, rate=200, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_too_many_parts_for_5_minutes(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await too_many_parts(client, launch, refused_for=300.0, rate=300, size="long")
