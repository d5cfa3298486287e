"""INGESTER_WORKERS: decode + insert in a worker process, on the session's real ClickHouse.

The worker must store exactly what the inline processor would (same rows, same deterministic
ids for envelopes without one, same poison codes), answer before its batch latency once the
ingester shuts down, and fail loudly, never ack, when it dies.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from clickhouse_driver import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

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
from ponix_ingester import EnvelopeProcessor
from ponix_ingester.pipe import WorkerConfig
from ponix_ingester.workers import WorkerError, WorkerPool
from ponix_nats import ACK, Term
from ponix_proto import new_envelope_id, pb
from ponix_runner import Deadline
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
async def pool(settings: ClickHouseSettings) -> AsyncIterator[WorkerPool]:
    pool = await WorkerPool.start(worker_config(settings), 1, Deadline.after(60))
    try:
        yield pool
    finally:
        await pool.close()


def stored_ids(settings: ClickHouseSettings) -> list[str]:
    client = Client.from_url(settings.url)
    try:
        rows = client.execute(
            f"SELECT id FROM `{settings.database}`.`{settings.table}` ORDER BY id"
        )
    finally:
        client.disconnect()
    return [str(row[0]) for row in rows]


async def test_a_worker_stores_what_the_inline_processor_would(
    pool: WorkerPool, settings: ClickHouseSettings
) -> None:
    msgs = [
        delivery(1, envelope(1), "a"),
        delivery(2, envelope(2, with_id=False), "header-id-2"),  # id from Nats-Msg-Id
        delivery(3, envelope(3, with_id=False), None),  # id from stream:sequence
        delivery(4, envelope(4, device=""), None),  # poison: no device
        delivery(5, b"\xff" * (MAX_BYTES + 1), None),  # poison: too large
        delivery(6, envelope(6), "f"),
    ]
    rows_before = REGISTRY.get_sample_value("ponix_rows_inserted_total") or 0.0
    inserts_before = REGISTRY.get_sample_value("ponix_insert_seconds_count") or 0.0

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
    # The writer's metrics are counted in the worker and added to this process's (the worker
    # reports them before it answers), on top of what this process counted itself before.
    rows_after = REGISTRY.get_sample_value("ponix_rows_inserted_total") or 0.0
    assert rows_after == rows_before + 4
    inserts_after = REGISTRY.get_sample_value("ponix_insert_seconds_count") or 0.0
    assert inserts_after >= inserts_before + 1


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
    settings: ClickHouseSettings,
) -> None:
    slow = settings.model_copy(update={"batch_max_latency": 60.0})
    pool = await WorkerPool.start(worker_config(slow), 1, Deadline.after(60))
    token = Token()
    supervisor = asyncio.create_task(pool.run(token))
    try:
        batch = asyncio.create_task(pool.process([delivery(1, envelope(1), "a")]))
        await asyncio.sleep(0.5)
        assert not batch.done(), "stored before the latency or a shutdown asked for it"
        token.set()
        async with asyncio.timeout(10):
            result = await batch
            await supervisor
        assert list(result.outcomes) == [ACK]
    finally:
        await pool.close()
    assert len(stored_ids(settings)) == 1


async def test_a_dead_worker_fails_its_batches_and_the_service(
    settings: ClickHouseSettings,
) -> None:
    slow = settings.model_copy(update={"batch_max_latency": 60.0})
    pool = await WorkerPool.start(worker_config(slow), 1, Deadline.after(60))
    token = Token()
    supervisor = asyncio.create_task(pool.run(token))
    try:
        batch = asyncio.create_task(pool.process([delivery(1, envelope(1), "a")]))
        await asyncio.sleep(0.3)
        [pid] = pool.pids
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(10):
            with pytest.raises(WorkerError, match="exited"):
                await batch
            with pytest.raises(WorkerError, match="exited with -9"):
                await supervisor
        assert not pool.alive
    finally:
        with pytest.raises(WorkerError):
            await pool.close()
    assert stored_ids(settings) == []
