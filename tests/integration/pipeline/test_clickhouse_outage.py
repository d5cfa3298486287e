"""ClickHouse goes away mid-stream: the writer holds the batch and retries it in place (no nak,
no redelivery), fetching pauses so in-flight stays bounded, nothing is dead-lettered, and once
ClickHouse is back every envelope is stored exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ponix_devstack import ClickHouseServer
from tests.support.pipeline import (
    Pipeline,
    PipelineClient,
    ServiceLauncher,
    ServiceProcess,
    eventually,
)

pytestmark = pytest.mark.integration

BEFORE, DURING = 500, 2_000
OUTAGE = 5.0
MAX_IN_FLIGHT_ROWS = 1_000


async def _held(ingester: ServiceProcess) -> float:
    return (await ingester.metrics()).value("ponix_held_rows")


async def test_clickhouse_outage_is_held_in_place_and_everything_is_stored_once_after_it(
    nats_url: str,
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    unique: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A ClickHouse of this test's own: stopping the session's would break its neighbours.
    server = clickhouse_server_factory()
    pipeline = Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=server.url,
        unique=unique,
        NATS_STORAGE="memory",
        NATS_BATCH_SIZE=100,
        CLICKHOUSE_BATCH_MAX_ROWS=100,
        CLICKHOUSE_BATCH_MAX_LATENCY=0.1,
        CLICKHOUSE_MAX_IN_FLIGHT_ROWS=MAX_IN_FLIGHT_ROWS,
        CLICKHOUSE_CONNECT_TIMEOUT=1,
        CLICKHOUSE_INSERT_TIMEOUT=5,
        CLICKHOUSE_RETRY_MAX_DELAY=1,
    )
    async with (
        PipelineClient.connect(pipeline) as client,
        ServiceLauncher(tmp_path) as launch,
    ):
        try:
            ingester = await launch.start(pipeline)
            ledger = await client.publish_synthetic(BEFORE, seed=19)
            await client.wait_until_drained(within=30)
            assert (await client.counts()).rows == BEFORE

            # SIGKILL: the outage starts at once (on SIGTERM, 18.16 keeps serving the ingester's
            # open connections for up to 10 s while it shuts down). kill() and start() block
            # the loop's thread on purpose: the devstack ties a server's life to the thread
            # that started it, and a to_thread worker may go away.
            server.kill()
            down_since = time.monotonic()
            ledger.extend(await client.publish_synthetic(DURING, seed=23))
            await eventually(
                lambda: _held(ingester), within=10, what="a held batch while ClickHouse is down"
            )

            most_ack_pending = most_in_flight_rows = 0
            fewest_pending = DURING
            while time.monotonic() - down_since < OUTAGE:
                info = await client.consumer_info()
                metrics = await ingester.metrics()
                most_ack_pending = max(most_ack_pending, info.num_ack_pending)
                fewest_pending = min(fewest_pending, info.num_pending)
                most_in_flight_rows = max(
                    most_in_flight_rows, int(metrics.value("ponix_in_flight_rows"))
                )
                # Sampling the outage at a steady pace; nothing to wait for here.
                await asyncio.sleep(0.2)
            assert ingester.running
            server.start()
            up_since = time.monotonic()

            info = await client.wait_until_drained(within=45)
            recovered_in = time.monotonic() - up_since
            metrics = await ingester.metrics()
            counts = await client.counts()
            letters = await client.dead_letters()
        finally:
            await client.delete_streams()

    total = BEFORE + DURING
    assert not ledger.failed
    assert (counts.rows, counts.distinct_ids) == (total, total)
    # A store failure never reaches the DLQ, and never costs a delivery: held, not nakked.
    assert letters == []
    nakked = metrics.value("ponix_envelopes_nakked_total")
    redelivered = info.delivered.consumer_seq - info.delivered.stream_seq
    assert nakked == 0
    assert redelivered == 0
    assert metrics.value("ponix_held_rows") == 0
    # Fetching paused: the writer's in-flight bound held and the backlog stayed in the stream.
    assert most_in_flight_rows <= MAX_IN_FLIGHT_ROWS
    assert most_ack_pending <= MAX_IN_FLIGHT_ROWS
    assert fewest_pending > 0
    with capsys.disabled():
        print(
            f"\n[clickhouse outage {OUTAGE:g}s] nakked {nakked:.0f}, redelivered {redelivered}, "
            f"max ack pending {most_ack_pending}, max in-flight rows {most_in_flight_rows}, "
            f"min pending {fewest_pending}, physical rows {counts.physical_rows}, "
            f"drained {recovered_in:.1f}s after restart"
        )
