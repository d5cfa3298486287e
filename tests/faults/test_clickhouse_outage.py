"""ClickHouse goes away for a while under continuous publishing (a dedicated server, stopped
and started on the same data directory).

The writer holds its batch and retries it in place with capped backoff (no hot loop, no nak):
fetching pauses, so in-flight rows and unacked messages stay bounded and RSS stays flat. After
the outage the held batch goes in, the lag goes back to zero, and nothing is lost, duplicated,
dead-lettered or delivered twice.

Settings: the shipped defaults. Short: SIGKILL, down 8 s (``make test``); long: SIGTERM, 5 min.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ponix_config import ClickHouseSettings, NatsSettings
from ponix_devstack import ClickHouseServer
from tests.faults.harness import default_pipeline
from tests.faults.refusal import Fault, assert_held_in_place, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher

MAX_IN_FLIGHT_ROWS = ClickHouseSettings().max_in_flight_rows
MAX_ACK_PENDING = NatsSettings().max_ack_pending
RSS_GROWTH_LIMIT_MB = 40


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
    clickhouse = clickhouse_server_factory()
    pipeline = default_pipeline(
        nats_url=nats_url, clickhouse_url=clickhouse.url, unique=unique, database="ponix"
    )

    # kill() and start() block the loop's thread on purpose: the devstack ties a server's life
    # to the thread that started it, and a to_thread worker may go away.
    async def refuse() -> None:
        (clickhouse.kill if kill else clickhouse.stop)()

    async def restore() -> None:
        clickhouse.start()

    async with PipelineClient.connect(pipeline, provision=True) as client:
        try:
            run = await refusal(
                client,
                launch,
                scenario="clickhouse_outage",
                size=size,
                fault=Fault(refuse, restore),
                refused_for=outage,
                rate=rate,
                seed=3,
                faults={"how": "SIGKILL" if kill else "SIGTERM"},
            )
        finally:
            await client.delete_streams()
    assert_held_in_place(run)
    notes = run.figures.notes
    failed = notes["failed_inserts"]
    assert failed <= 2 * (8 + outage / 20), f"{failed} failed inserts in {outage}s: no backoff"
    assert max(s.held_rows for s in run.samples) > 0
    assert notes["max_ack_pending"] <= MAX_ACK_PENDING
    assert notes["max_in_flight_rows"] <= MAX_IN_FLIGHT_ROWS
    first, second = run.rss_halves()
    start = run.figures.rss_start_mb or 0.0
    assert max(first, second) - start < RSS_GROWTH_LIMIT_MB, "RSS grew during the outage"


@pytest.mark.faults
async def test_clickhouse_down_is_held_in_place_and_loses_nothing(
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
