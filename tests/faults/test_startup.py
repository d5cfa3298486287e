"""Scenario 10: the ingester starts while ClickHouse or NATS is down (as after a host reboot).

It waits with backoff: ``/readyz`` answers 503, one ``waiting for dependency`` line per attempt
(not a flood), and it begins as soon as the server appears. With a short
INGESTER_STARTUP_DEADLINE and a server that never appears it exits non-zero with one line.
Restarted in the middle of an outage, it loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from ponix_devstack import ClickHouseServer, NatsServer, free_port
from tests.faults.figures import Figures, record
from tests.faults.harness import (
    Background,
    Book,
    Outcome,
    default_pipeline,
    drain_and_judge,
    readyz,
)
from tests.support.pipeline import (
    Pipeline,
    PipelineClient,
    ServiceLauncher,
    ServiceProcess,
    eventually,
)

WAITING = "waiting for dependency"


async def _waits_then_starts(
    ingester: ServiceProcess, bring_up: Callable[[], object], *, down_for: float
) -> dict[str, object]:
    """While the dependency is down: /readyz 503 and a few log lines; then bring it up."""
    await ingester.wait_for_log(WAITING, within=15)
    statuses = set()
    deadline = time.monotonic() + down_for
    while time.monotonic() < deadline:
        statuses.add(await readyz(ingester))
        await asyncio.sleep(0.25)
    lines = len(ingester.events(WAITING))
    await asyncio.to_thread(bring_up)
    up_at = time.monotonic()
    await ingester.wait_ready(within=30)

    async def ready() -> bool:
        return await readyz(ingester) == 200

    await eventually(ready, within=10, what="/readyz 200")
    return {
        "readyz_while_down": sorted(s for s in statuses if s is not None),
        "waiting_lines": lines,
        "started_after_up_s": round(time.monotonic() - up_at, 2),
    }


async def _publish_and_judge(client: PipelineClient, messages: int) -> Outcome:
    book = Book()
    book.add(await client.publish_synthetic(messages, seed=10))
    outcome = await drain_and_judge(client, book, within=30)
    assert outcome.verdict.clean, outcome.verdict.summary()
    return outcome


@pytest.mark.faults
async def test_start_while_clickhouse_is_down_waits_then_begins(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    started = time.monotonic()
    clickhouse = clickhouse_server_factory()
    clickhouse.stop()
    pipeline = default_pipeline(
        nats_url=nats_url, clickhouse_url=clickhouse.url, unique=unique, database="ponix"
    )
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline, ready=False)
        seen = await _waits_then_starts(ingester, clickhouse.start, down_for=2.5)
        outcome = await _publish_and_judge(client, 300)
        await ingester.terminate()
        await client.delete_streams()
    figures = Figures("start_while_clickhouse_down", "short", faults={"down_s": 2.5})
    figures.take_outcome(outcome, started)
    figures.notes = seen
    record(figures)
    assert seen["readyz_while_down"] == [503]
    # Backoff 0.5, 1, 2 s: about 3 attempts in 2.5 s, never a flood.
    assert 2 <= int(seen["waiting_lines"]) <= 8, seen  # type: ignore[call-overload]


@pytest.mark.faults
async def test_start_while_nats_is_down_waits_then_begins(
    nats_server_factory: Callable[..., NatsServer],
    clickhouse_url: str,
    clickhouse_db: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    started = time.monotonic()
    server = nats_server_factory()
    server.stop()
    pipeline = default_pipeline(
        nats_url=server.url, clickhouse_url=clickhouse_url, unique=unique, database=clickhouse_db
    )
    ingester = await launch.start(pipeline, ready=False)
    seen = await _waits_then_starts(ingester, server.start, down_for=2.5)
    async with PipelineClient.connect(pipeline) as client:
        outcome = await _publish_and_judge(client, 300)
        await ingester.terminate()
        await client.delete_streams()
    figures = Figures("start_while_nats_down", "short", faults={"down_s": 2.5})
    figures.take_outcome(outcome, started)
    figures.notes = seen
    record(figures)
    assert seen["readyz_while_down"] == [503]
    assert 2 <= int(seen["waiting_lines"]) <= 8, seen  # type: ignore[call-overload]


@pytest.mark.faults
@pytest.mark.parametrize("missing", ["clickhouse", "nats"])
async def test_a_server_that_never_appears_ends_start_up_with_one_line(
    pipeline: Pipeline, launch: ServiceLauncher, missing: str
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    env = (
        {"CLICKHOUSE_URL": f"clickhouse://{nowhere}"}
        if missing == "clickhouse"
        else {"NATS_URL": f"nats://{nowhere}"}
    )
    ingester = await launch.start(
        pipeline.with_env(INGESTER_STARTUP_DEADLINE=1, **env), ready=False
    )
    exit_ = await ingester.wait(within=20)
    errors = [line.text for line in ingester.lines if line.text.startswith("error: ")]
    assert exit_.code == 1, ingester.tail()
    assert exit_.seconds < 1 + 6, f"took {exit_.seconds:.1f}s past a 1 s deadline"
    assert len(errors) == 1, ingester.tail()
    assert errors[0].startswith(f"error: {missing}.unreachable: "), errors
    assert len(ingester.events(WAITING)) <= 4, ingester.tail()


@pytest.mark.faults
async def test_restarted_during_a_clickhouse_outage_loses_nothing(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
    nats_url: str,
    unique: str,
    launch: ServiceLauncher,
) -> None:
    started = time.monotonic()
    clickhouse = clickhouse_server_factory()
    pipeline = default_pipeline(
        nats_url=nats_url, clickhouse_url=clickhouse.url, unique=unique, database="ponix"
    )
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        with Background(client, book, rate=300, seed=11) as publishing:
            await asyncio.sleep(0.5)
            clickhouse.kill()
            await asyncio.sleep(1.0)
            await ingester.kill()  # with a held batch and unacked messages in hand
            ingester = await launch.start(pipeline, name="ingester-2", ready=False)
            await ingester.wait_for_log(WAITING, within=15)
            clickhouse.start()
            await ingester.wait_ready(within=30)
            await publishing.stop()
        outcome = await drain_and_judge(client, book, within=60)
        await ingester.terminate()
        await client.delete_streams()
    figures = Figures(
        "restart_during_clickhouse_outage",
        "short",
        faults={"down_s": "until restarted ingester waits"},
    )
    figures.take_outcome(outcome, started)
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
