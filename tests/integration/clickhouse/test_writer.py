"""BatchWriter on the real server: rows selectable on resolve, duplicates collapse, store
failures held and retried in place, rows the server rejects isolated."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from ponix_clickhouse import (
    BatchWriter,
    Fault,
    make_client,
    migrate,
    read_table_layout,
)
from ponix_devstack import ClickHouseServer
from ponix_runner import Backoff
from tests.support.pipeline import eventually

from .conftest import MakeSettings, Query

pytestmark = pytest.mark.integration

FAST_BACKOFF = Backoff(initial=0.05, maximum=0.5, jitter=0.1)
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z

MakeWriter = Callable[..., BatchWriter]


@pytest.fixture
async def make_writer(make_settings: MakeSettings) -> AsyncIterator[MakeWriter]:
    """``make(**settings overrides)``: a writer on the test's migrated database."""
    migrate(make_settings())
    writers: list[BatchWriter] = []

    def make(**overrides: Any) -> BatchWriter:
        values: dict[str, Any] = {"batch_max_latency": 30.0, "batch_max_rows": 100}
        values.update(overrides)
        settings = make_settings(**values)
        client = make_client(settings)
        try:
            layout = read_table_layout(client, settings.database, settings.table)
        finally:
            client.disconnect()
        writer = BatchWriter(
            settings,
            server_version=layout.server_version,
            layout=layout,
            backoff=FAST_BACKOFF,
            shutdown_timeout=0.5,
        )
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        await writer.close()


def envelope_rows(
    count: int, *, scale: int = 1, org: str = "org-1", ids: list[str] | None = None
) -> list[tuple[Any, ...]]:
    ids = ids or [str(uuid.uuid4()) for _ in range(count)]
    stamp = T0 * scale
    # A row is a function of its id, as a redelivered envelope is.
    return [(i, org, f"dev-{i[-1]}", stamp, stamp, '{"t":21.5}') for i in ids]


async def within(awaitable: Any, seconds: float = 10.0) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


def scale_of(make_settings: MakeSettings, clickhouse_db: str) -> int:
    client = make_client(make_settings())
    try:
        return read_table_layout(client, clickhouse_db, "processed_envelopes").time_scale()
    finally:
        client.disconnect()


async def test_rows_are_selectable_when_the_future_resolves(
    make_writer: MakeWriter, make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    writer = make_writer(batch_max_rows=100)
    scale = scale_of(make_settings, clickhouse_db)
    await within(writer.add(envelope_rows(100, scale=scale), 100 * 200))
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes") == [(100,)]


async def test_batches_flush_by_rows_by_bytes_and_by_latency(
    make_writer: MakeWriter, make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    scale = scale_of(make_settings, clickhouse_db)
    by_rows = make_writer(batch_max_rows=50)
    await within(by_rows.add(envelope_rows(50, scale=scale), 50))
    by_bytes = make_writer(batch_max_rows=1000, batch_max_bytes=4096)
    await within(by_bytes.add(envelope_rows(3, scale=scale), 5000))
    by_latency = make_writer(batch_max_rows=1000, batch_max_latency=0.1)
    await within(by_latency.add(envelope_rows(2, scale=scale), 2))
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes") == [(55,)]


async def test_redelivered_rows_collapse_under_final(
    make_writer: MakeWriter, make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    writer = make_writer(batch_max_rows=40)
    scale = scale_of(make_settings, clickhouse_db)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    await within(writer.add(envelope_rows(40, scale=scale, ids=ids), 40))
    # The same envelopes again (a redelivery), in another order and batch.
    await within(writer.add(envelope_rows(40, scale=scale, ids=ids[::-1]), 40))
    table = f"{clickhouse_db}.processed_envelopes"
    ((stored,),) = query(f"SELECT count() FROM {table}")
    assert stored in (40, 80)  # 80 until a merge; 40 where the dedup token dropped the retry
    assert query(f"SELECT count() FROM {table} FINAL") == [(40,)]
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes_exact") == [(40,)]
    assert query(f"SELECT uniqExact(id) FROM {table}") == [(40,)]


async def test_datetimes_and_integer_timestamps_store_the_same_instant(
    make_writer: MakeWriter, make_settings: MakeSettings, query: Query, clickhouse_db: str
) -> None:
    writer = make_writer(batch_max_rows=2)
    scale = scale_of(make_settings, clickhouse_db)
    moment = datetime.fromtimestamp(T0, UTC)
    await within(
        writer.add(
            [
                ("as-int", "o", "d", T0 * scale, T0 * scale, "{}"),
                ("as-datetime", "o", "d", moment, moment, "{}"),
            ],
            2,
        )
    )
    rows = query(
        f"SELECT id, toUInt32(occurred_at) FROM {clickhouse_db}.processed_envelopes ORDER BY id"
    )
    assert rows == [("as-datetime", T0), ("as-int", T0)]


async def held(writer: BatchWriter) -> None:
    async def holding() -> bool:
        return writer.holding

    await eventually(holding, within=15, what="the writer holds the batch")


async def test_a_row_the_server_rejects_is_isolated_and_the_rest_stored(
    make_writer: MakeWriter,
    make_settings: MakeSettings,
    query: Query,
    clickhouse_db: str,
) -> None:
    """A check on the row itself (a MATERIALIZED throwIf, as a table may carry) rejects one
    row of a batch: bisection stores the others and names that one."""
    table = f"{clickhouse_db}.processed_envelopes"
    query(
        f"ALTER TABLE {table} ADD COLUMN guard UInt8 MATERIALIZED throwIf(organization_id = 'evil')"
    )
    scale = scale_of(make_settings, clickhouse_db)
    writer = make_writer(batch_max_rows=100)
    good = writer.add(envelope_rows(60, scale=scale), 60)
    rows = envelope_rows(40, scale=scale)
    rows[13] = envelope_rows(1, scale=scale, org="evil")[0]
    mixed = writer.add(rows, 40)
    assert await within(good) == ()
    rejected = await within(mixed)
    assert [r.index for r in rejected] == [13]
    assert rejected[0].error.fault is Fault.MESSAGE
    assert rejected[0].error.server_code == 395
    assert query(f"SELECT count() FROM {table} WHERE organization_id = 'evil'") == [(0,)]
    assert query(f"SELECT count() FROM {table}") == [(99,)]
    assert not writer.holding


@pytest.mark.parametrize(
    ("break_it", "mend_it"),
    [
        ("DETACH TABLE {table}", "ATTACH TABLE {table}"),
        ("ALTER TABLE {table} DROP COLUMN data", "ALTER TABLE {table} ADD COLUMN data String"),
    ],
    ids=["detached", "column_dropped"],
)
async def test_a_table_that_refuses_inserts_holds_the_batch_until_it_is_back(
    make_writer: MakeWriter,
    make_settings: MakeSettings,
    query: Query,
    clickhouse_db: str,
    break_it: str,
    mend_it: str,
) -> None:
    """The server answers, the table refuses: the batch is held (never given back) and
    stored once the table is back. Recovery is the held insert succeeding."""
    table = f"{clickhouse_db}.processed_envelopes"
    scale = scale_of(make_settings, clickhouse_db)
    writer = make_writer(batch_max_rows=10)
    query(break_it.format(table=table))
    stored = writer.add(envelope_rows(10, scale=scale), 10)
    await held(writer)
    paused = asyncio.ensure_future(writer.ready())
    await asyncio.sleep(0.3)  # several retries with the table refusing
    assert not stored.done()
    assert not paused.done()
    query(mend_it.format(table=table))
    assert await within(stored, 15) == ()
    await within(paused)
    assert query(f"SELECT count() FROM {table}") == [(10,)]


async def test_a_crashed_server_holds_the_batch_until_it_is_back(
    make_writer: MakeWriter,
    make_settings: MakeSettings,
    query: Query,
    clickhouse_db: str,
    clickhouse_server: ClickHouseServer,
) -> None:
    scale = scale_of(make_settings, clickhouse_db)
    writer = make_writer(batch_max_rows=10, connect_timeout=1.0)
    await within(writer.add(envelope_rows(10, scale=scale), 10))

    clickhouse_server.kill()  # a crash: no goodbye to open connections
    stored = writer.add(envelope_rows(10, scale=scale), 10)
    await held(writer)
    assert not stored.done()
    await asyncio.to_thread(clickhouse_server.start)
    assert await within(stored, 20) == ()
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes") == [(20,)]


async def test_a_readonly_server_holds_the_batch_until_writes_are_allowed_again(
    make_writer: MakeWriter,
    make_settings: MakeSettings,
    query: Query,
    clickhouse_db: str,
    clickhouse_server: ClickHouseServer,
) -> None:
    scale = scale_of(make_settings, clickhouse_db)
    await asyncio.to_thread(clickhouse_server.set_readonly, readonly=True)
    try:
        writer = make_writer(batch_max_rows=5)
        stored = writer.add(envelope_rows(5, scale=scale), 5)
        await held(writer)
    finally:
        await asyncio.to_thread(clickhouse_server.set_readonly, readonly=False)
    assert await within(stored, 20) == ()
    assert query(f"SELECT count() FROM {clickhouse_db}.processed_envelopes") == [(5,)]
