"""The ingester's ClickHouse user turns read-only for a while (users file swapped on a dedicated
server), then writable again.

ClickHouse applies a profile change to new logins only (18.16: a native connection keeps the
settings it logged in with), so the ingester reaches ClickHouse through a TCP proxy
(``proxy.py``) that aborts every open connection right after the swap: the writer's next
login is read-only and its inserts fail with READONLY (164), the store's fault. It holds its
batch and retries it in place. After the swap back (no connection reset this time) it must
get going by itself: nothing nakked, redelivered or dead-lettered.

Settings: the shipped defaults. Short: read-only for 5 s (``make test``); long: 5 min.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ponix_devstack import ClickHouseServer, ClickHouseUser
from tests.faults.harness import default_pipeline
from tests.faults.proxy import ChaosProxy
from tests.faults.refusal import Fault, assert_held_in_place, failed_for, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher

WRITER = ClickHouseUser("writer", "writer-pw")


async def readonly_for_a_while(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
    *,
    refused_for: float,
    rate: float,
    size: str,
) -> None:
    server = clickhouse_server_factory(users=[ClickHouseUser("default"), WRITER])
    proxy = await ChaosProxy(server.host, server.tcp_port).start()
    url = server.url_for("writer").replace(f":{server.tcp_port}/", f":{proxy.port}/")
    pipeline = default_pipeline(
        nats_url=nats_url, clickhouse_url=url, unique=unique, database="ponix"
    )

    async def refuse() -> None:
        await asyncio.to_thread(server.set_readonly, "writer")
        proxy.reset()

    async def restore() -> None:
        await asyncio.to_thread(server.set_readonly, "writer", readonly=False)

    try:
        async with PipelineClient.connect(pipeline, provision=True) as client:
            try:
                run = await refusal(
                    client,
                    launch,
                    scenario="readonly_user",
                    size=size,
                    fault=Fault(refuse, restore),
                    refused_for=refused_for,
                    rate=rate,
                    seed=90,
                    faults={"connections_reset": "after the swap to read-only"},
                )
            finally:
                await client.delete_streams()
    finally:
        await proxy.close()
    assert_held_in_place(run)
    assert failed_for(run, "readonly") > 0, run.figures.notes["failed_by_reason"]


@pytest.mark.faults
async def test_readonly_user_is_held_in_place_and_resumes_when_writable(
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
        refused_for=5.0,
        rate=200,
        size="short",
    )


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_readonly_user_for_5_minutes(
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
        refused_for=300.0,
        rate=300,
        size="long",
    )
