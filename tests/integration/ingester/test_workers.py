"""INGESTER_WORKERS: decode + insert in a worker process, on the session's real ClickHouse.

The worker must store exactly what the inline processor would (same rows, same deterministic
ids for envelopes without one, same poison codes), hold a batch the store refuses as the inline
writer does (the pool's ``ready()`` waits, readiness turns false), answer before its batch
latency once the ingester shuts down, and fail loudly, never ack, when it dies. Its metrics reach
the ingester's ``/metrics`` and never go backwards when a worker goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from clickhouse_driver import Client
from nats.aio.msg import Msg
from prometheus_client.multiprocess import MultiProcessCollector

from ponix_clickhouse import (
    INVALID,
    TOO_LARGE,
    BatchWriter,
    RowBuilder,
    TimeRange,
    make_client,
    migrate,
    read_table_layout,
    server_version,
)
from ponix_config import ClickHouseSettings
from ponix_ingest import EnvelopeProcessor
from ponix_nats import ACK, Nak, ProcessingResult, Term
from ponix_proto import new_envelope_id, pb
from ponix_runner import Deadline
from ponix_telemetry import HealthServer
from ponix_workers import WORKER_METRICS, WorkerConfig, WorkerError, WorkerMetrics, WorkerPool
from tests.support.pipeline import (
    Metrics,
    Pipeline,
    PipelineClient,
    ServiceLauncher,
    ServiceProcess,
    eventually,
)
from tests.support.token import Token

pytestmark = pytest.mark.integration

MAX_BYTES = 4096
STREAM = "PROCESSED_ENVELOPES"


def envelope(seq: int, *, with_id: bool = True, device: str = "device-1") -> bytes:
    env = pb.ProcessedEnvelope(end_device_id=device, organization_id="acme")
    if with_id:
        env.id = new_envelope_id()
    env.occurred_at.FromDatetime(datetime(2026, 11, 23, 12, 0, seq % 60, tzinfo=UTC))
    env.data.update({"seq": float(seq), "note": "ünïcode"})
    return env.SerializeToString()


def delivery(seq: int, payload: bytes, msg_id: str | None) -> Msg:
    reply = f"$JS.ACK.{STREAM}.writer.1.{seq}.{seq}.1700000000000000000.0"
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    return Msg(None, subject="processed_envelopes.acme", reply=reply, data=payload, headers=headers)  # type: ignore[arg-type]


def deliveries(first: int, count: int) -> list[Msg]:
    return [delivery(seq, envelope(seq), None) for seq in range(first, first + count)]


@pytest.fixture
def settings(clickhouse_url: str, clickhouse_db: str) -> ClickHouseSettings:
    values: dict[str, Any] = {"url": clickhouse_url, "database": clickhouse_db}
    settings = ClickHouseSettings(**values)
    migrate(settings)
    return settings


def worker_config(settings: ClickHouseSettings) -> WorkerConfig:
    probe = make_client(settings)
    try:
        layout = read_table_layout(
            probe, settings.database, settings.table, server_version=server_version(probe)
        )
    finally:
        probe.disconnect()
    return WorkerConfig(
        clickhouse=settings,
        layout=layout,
        max_envelope_bytes=MAX_BYTES,
        time_range=TimeRange.for_column_type(
            layout.type_of("occurred_at"), layout.time_scale("occurred_at")
        ),
        subjects=None,
        shutdown_timeout=2.0,
    )


@pytest.fixture
def worker_metrics() -> Iterator[WorkerMetrics]:
    directory = WorkerMetrics()
    try:
        yield directory
    finally:
        directory.close()


StartPool = Callable[..., Awaitable[WorkerPool]]


@pytest.fixture
async def start_pool(
    settings: ClickHouseSettings, worker_metrics: WorkerMetrics
) -> AsyncIterator[StartPool]:
    """Starts pools of one worker on the test's database (``**changes`` to its settings);
    closes them after the test."""
    pools: list[WorkerPool] = []

    async def start(**changes: Any) -> WorkerPool:
        config = worker_config(settings.model_copy(update=changes))
        pool = await WorkerPool.start(config, 1, Deadline.after(60), worker_metrics)
        pools.append(pool)
        return pool

    yield start
    for pool in pools:
        with contextlib.suppress(WorkerError):  # a test that killed a worker checked it already
            await pool.close()


@pytest.fixture
async def pool(start_pool: StartPool) -> WorkerPool:
    return await start_pool()


@pytest.fixture
async def scrape() -> AsyncIterator[Callable[[], Awaitable[Metrics]]]:
    """``/metrics`` of this process, as the ingester serves it."""
    health = HealthServer("127.0.0.1", 0)
    await health.start()
    async with aiohttp.ClientSession() as session:

        async def get() -> Metrics:
            url = f"http://127.0.0.1:{health.bound_port}/metrics"
            async with session.get(url) as answer:
                return Metrics.parse(await answer.text())

        yield get
    await health.stop()


def query(settings: ClickHouseSettings, sql: str) -> list[tuple[Any, ...]]:
    client = Client.from_url(settings.url)
    try:
        return list(client.execute(sql))
    finally:
        client.disconnect()


def stored_ids(settings: ClickHouseSettings) -> list[str]:
    table = f"`{settings.database}`.`{settings.table}`"
    return [str(row[0]) for row in query(settings, f"SELECT id FROM {table} ORDER BY id")]


def table_of(settings: ClickHouseSettings) -> str:
    return f"`{settings.database}`.`{settings.table}`"


async def test_a_worker_stores_what_the_inline_processor_would(
    pool: WorkerPool, settings: ClickHouseSettings, scrape: Callable[[], Awaitable[Metrics]]
) -> None:
    msgs = [
        delivery(1, envelope(1), "a"),
        delivery(2, envelope(2, with_id=False), "header-id-2"),  # id from Nats-Msg-Id
        delivery(3, envelope(3, with_id=False), None),  # id from stream:sequence
        delivery(4, envelope(4, device=""), None),  # poison: no device
        delivery(5, b"\xff" * (MAX_BYTES + 1), None),  # poison: too large
        delivery(6, envelope(6), "f"),
    ]
    before = await scrape()

    result = await pool.process(msgs)

    outcomes = list(result.outcomes)
    assert [type(o) for o in outcomes] == [type(ACK), type(ACK), type(ACK), Term, Term, type(ACK)]
    assert outcomes[3] == Term(INVALID, "end_device_id is empty")
    assert isinstance(outcomes[4], Term)
    assert outcomes[4].code == TOO_LARGE
    config = worker_config(settings)
    builder = RowBuilder(max_bytes=MAX_BYTES, time_range=config.time_range)
    expected = sorted(row[0] for msg in msgs if isinstance(row := builder.build(msg), tuple))
    assert stored_ids(settings) == expected
    # Counted in the worker, exported here: the insert is on /metrics once it is answered.
    after = await scrape()
    rows = "ponix_rows_inserted_total"
    assert after.value(rows) == before.value(rows) + 4
    count, total = "ponix_insert_duration_seconds_count", "ponix_insert_duration_seconds_sum"
    assert after.value(count) >= before.value(count) + 1
    assert after.value(total) > before.value(total)
    assert (
        after.value("ponix_insert_batch_rows_sum")
        == before.value("ponix_insert_batch_rows_sum") + 4
    )
    assert after.value("ponix_last_insert_timestamp_seconds") > 0
    assert after.value("ponix_in_flight_rows") == 0


async def test_same_batches_inline_and_in_a_worker_give_the_same_rows(
    pool: WorkerPool, settings: ClickHouseSettings
) -> None:
    msgs = [delivery(seq, envelope(seq, with_id=seq % 2 == 0), None) for seq in range(1, 21)]
    await pool.process(msgs)
    in_worker = stored_ids(settings)
    config = worker_config(settings)
    builder = RowBuilder(max_bytes=MAX_BYTES, time_range=config.time_range)
    layout = config.layout
    writer = BatchWriter(settings, layout.columns, server_version=layout.server_version)
    try:
        await EnvelopeProcessor(builder, writer).process(msgs)
    finally:
        await writer.close()
    both = stored_ids(settings)
    assert both == sorted(in_worker + in_worker), "the two paths named an envelope differently"


async def test_at_shutdown_a_worker_inserts_at_once_what_it_buffers(
    start_pool: StartPool, settings: ClickHouseSettings, scrape: Callable[[], Awaitable[Metrics]]
) -> None:
    pool = await start_pool(batch_max_latency=60.0)
    token = Token()
    supervisor = asyncio.create_task(pool.run(token))
    batch = asyncio.create_task(pool.process([delivery(1, envelope(1), "a")]))

    async def buffered() -> bool:
        return (await scrape()).value("ponix_in_flight_rows") == 1

    await eventually(buffered, within=10, what="the row in the worker's writer")
    assert not batch.done(), "stored before the latency or a shutdown asked for it"
    token.set()
    async with asyncio.timeout(10):
        result = await batch
        await supervisor
    assert list(result.outcomes) == [ACK]
    assert len(stored_ids(settings)) == 1


async def test_a_dead_worker_fails_its_batches_and_the_service(
    start_pool: StartPool, settings: ClickHouseSettings, scrape: Callable[[], Awaitable[Metrics]]
) -> None:
    pool = await start_pool(batch_max_latency=60.0)
    token = Token()
    supervisor = asyncio.create_task(pool.run(token))
    batch = asyncio.create_task(pool.process([delivery(1, envelope(1), "a")]))

    async def buffered() -> bool:
        return (await scrape()).value("ponix_in_flight_rows") == 1

    # The batch is in the worker's writer, not on its way: killing now loses a batch in hand.
    await eventually(buffered, within=10, what="the row in the worker's writer")
    [pid] = pool.pids
    os.kill(pid, signal.SIGKILL)
    async with asyncio.timeout(10):
        with pytest.raises(WorkerError, match="exited"):
            await batch
        with pytest.raises(WorkerError, match="exited with -9"):
            await supervisor
    assert not pool.alive
    with pytest.raises(WorkerError):
        await pool.close()
    assert stored_ids(settings) == []
    # A dead worker's rows in flight no longer count (its live gauges are removed).
    assert (await scrape()).value("ponix_in_flight_rows") == 0


async def test_counters_never_go_backwards_across_a_worker_restart(
    start_pool: StartPool, settings: ClickHouseSettings, scrape: Callable[[], Awaitable[Metrics]]
) -> None:
    names = (
        "ponix_rows_inserted_total",
        "ponix_insert_duration_seconds_count",
        "ponix_insert_batch_rows_count",
        "ponix_insert_batch_rows_sum",
    )
    first = await start_pool()
    await first.process(deliveries(1, 5))
    counted = await scrape()
    assert counted.value("ponix_rows_inserted_total") >= 5

    [pid] = first.pids
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerError):
        await first.close()
    after_death = await scrape()
    for name in names:
        assert after_death.value(name) == counted.value(name), name

    second = await start_pool()
    await second.process(deliveries(6, 3))
    restarted = await scrape()
    for name in names:
        assert restarted.value(name) > counted.value(name), name
    assert (
        restarted.value("ponix_rows_inserted_total")
        == counted.value("ponix_rows_inserted_total") + 3
    )
    assert len(stored_ids(settings)) == 8


async def wait_holding(pool: WorkerPool) -> None:
    async def holding() -> bool:
        return pool.holding

    await eventually(holding, within=15, what="the worker holding the batch")


async def test_a_worker_holds_a_batch_the_table_refuses_until_it_is_back(
    pool: WorkerPool,
    settings: ClickHouseSettings,
    scrape: Callable[[], Awaitable[Metrics]],
    worker_metrics: WorkerMetrics,
) -> None:
    table = table_of(settings)
    holds_before = (await scrape()).value("ponix_holds_total")
    query(settings, f"DETACH TABLE {table}")
    try:
        batch = asyncio.create_task(pool.process(deliveries(1, 5)))
        await wait_holding(pool)
        ready = asyncio.ensure_future(pool.ready())
        # Several retries with the table refusing: nothing is given back, nothing fetched.
        done, _ = await asyncio.wait({batch, ready}, timeout=0.5)
        assert not done
        held = await scrape()
        assert held.value("ponix_held_rows") == 5
        assert held.value("ponix_held_seconds") > 0
        assert held.value("ponix_holds_total") == holds_before + 1
    finally:
        query(settings, f"ATTACH TABLE {table}")
    async with asyncio.timeout(20):
        result = await batch
        await ready
    assert list(result.outcomes) == [ACK] * 5
    assert not pool.holding
    assert len(stored_ids(settings)) == 5
    back = await scrape()
    assert back.value("ponix_held_rows") == 0
    assert back.value("ponix_held_seconds") == 0
    # Inserts, a failure, a hold and a recovery: whatever the worker recorded is exported.
    files = [str(path) for path in worker_metrics.directory.glob("*.db")]
    recorded = {
        family.name
        for family in MultiProcessCollector.merge(files)
        if any(sample.value for sample in family.samples)
    }
    exported = {family.name for metric in WORKER_METRICS for family in metric.describe()}
    assert recorded, "the worker recorded nothing in its multiprocess directory"
    assert recorded <= exported, f"recorded in the worker, never exported: {recorded - exported}"


async def test_at_shutdown_a_held_batch_comes_back_as_uncounted_naks(
    pool: WorkerPool, settings: ClickHouseSettings
) -> None:
    table = table_of(settings)
    token = Token()
    supervisor = asyncio.create_task(pool.run(token))
    query(settings, f"DETACH TABLE {table}")
    try:
        batch = asyncio.create_task(pool.process(deliveries(1, 3)))
        await wait_holding(pool)
        token.set()
        async with asyncio.timeout(10):
            result: ProcessingResult = await batch
            await supervisor
    finally:
        query(settings, f"ATTACH TABLE {table}")
    outcomes = list(result.outcomes)
    assert len(outcomes) == 3
    for outcome in outcomes:
        assert isinstance(outcome, Nak)
        assert outcome.code == "clickhouse.held_at_shutdown"
        assert not outcome.counted
    assert stored_ids(settings) == []
    assert not pool.holding


# -- the ingester as it ships, with one worker ---------------------------------------------------


@pytest.fixture
def pipeline(nats_url: str, clickhouse_url: str, clickhouse_db: str, unique: str) -> Pipeline:
    return Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=clickhouse_db,
        NATS_STORAGE="memory",
        INGESTER_WORKERS=1,
    )


@pytest.fixture
async def client(pipeline: Pipeline) -> AsyncIterator[PipelineClient]:
    async with PipelineClient.connect(pipeline) as client:
        yield client
        await client.delete_streams()


def readyz(service: ServiceProcess) -> dict[str, Any]:
    url = f"http://127.0.0.1:{service.http_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = answer.read()
    except urllib.error.HTTPError as not_ready:
        body = not_ready.read()
    checks: dict[str, Any] = json.loads(body)["checks"]
    return checks


async def checks_are(service: ServiceProcess, **expected: bool) -> dict[str, Any]:
    async def match() -> dict[str, Any] | None:
        checks = await asyncio.to_thread(readyz, service)
        return checks if all(checks.get(k) == v for k, v in expected.items()) else None

    return await eventually(match, within=20, what=f"/readyz checks {expected}")


def rows_on(metrics: Metrics) -> Sequence[float]:
    return (
        metrics.value("ponix_rows_inserted_total"),
        metrics.value("ponix_insert_duration_seconds_count"),
        metrics.value("ponix_insert_batch_rows_sum"),
    )


async def test_the_ingester_with_a_worker_shows_its_inserts_and_holds_on_its_endpoints(
    pipeline: Pipeline, client: PipelineClient, tmp_path: Path
) -> None:
    table = pipeline.table
    async with ServiceLauncher(tmp_path) as launch:
        ingester = await launch.start(pipeline, within=60)
        [started] = ingester.events("workers started")
        metrics_dir = Path(started.fields["metrics_dir"])
        assert await asyncio.to_thread(metrics_dir.is_dir)

        ledger = await client.publish_synthetic(300)
        await client.wait_until_drained(within=30)
        rows, inserts, batch_rows = rows_on(await ingester.metrics())
        assert rows == batch_rows == len(ledger)
        assert inserts >= 1

        await client.query(f"DETACH TABLE {table}")
        try:
            more = await client.publish_synthetic(50)
            checks = await checks_are(ingester, clickhouse_inserts=False)
            assert checks["clickhouse"] is True, "the server still answers"
        finally:
            await client.query(f"ATTACH TABLE {table}")
        await client.wait_until_drained(within=30)
        await checks_are(ingester, clickhouse_inserts=True)
        counts = await client.counts()
        assert counts.distinct_ids == len(ledger) + len(more)
        assert await client.dead_letters() == []
        assert (await ingester.metrics()).value("ponix_rows_inserted_total") >= rows + len(more)

        exit_ = await ingester.terminate()
        assert exit_.code == 0
        gone = not await asyncio.to_thread(metrics_dir.exists)
        assert gone, "the worker metrics directory outlived the ingester"
