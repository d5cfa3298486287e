"""The envelope table detached (``DETACH TABLE``), then attached again, while the server keeps
answering queries: how a replicated table behaves when Keeper is lost, and the refusal that
``SELECT 1`` cannot see.

Every insert fails with UNKNOWN_TABLE (60), the store's fault: the writer holds its batch and
retries it in place, and nothing is nakked, redelivered or dead-lettered.

Settings: the shipped defaults. Short: refused for 5 s (``make test``); long: 5 min.
"""

from __future__ import annotations

import pytest

from tests.faults.refusal import Fault, assert_held_in_place, failed_for, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher


async def table_detached(
    client: PipelineClient, launch: ServiceLauncher, *, refused_for: float, rate: float, size: str
) -> None:
    table = client.pipeline.table
    fault = Fault(
        refuse=lambda: client.query(f"DETACH TABLE {table}"),
        restore=lambda: client.query(f"ATTACH TABLE {table}"),
    )
    run = await refusal(
        client,
        launch,
        scenario="table_detached",
        size=size,
        fault=fault,
        refused_for=refused_for,
        rate=rate,
        seed=17,
    )
    assert_held_in_place(run)
    assert failed_for(run, "unknown_table") > 0, run.figures.notes["failed_by_reason"]
    failed = run.figures.notes["failed_inserts"]
    # Capped exponential backoff (0.5 s doubling to CLICKHOUSE_RETRY_MAX_DELAY, 30 s) for each
    # of at most two held batches: a retry every few seconds at most, never a hot loop.
    assert failed <= 2 * (8 + refused_for / 20), f"{failed} failed inserts in {refused_for}s"


@pytest.mark.faults
async def test_table_detached_is_held_in_place_and_loses_nothing(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await table_detached(client, launch, refused_for=5.0, rate=300, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_table_detached_for_5_minutes(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await table_detached(client, launch, refused_for=300.0, rate=300, size="long")
