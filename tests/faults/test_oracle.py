"""Negative controls: the oracle must see a loss, a visible duplicate, a changed row and a
misrouted dead letter when we plant them, and must not call a same-key redelivery a duplicate;
end to end, it must fail a real run whose rows were deleted or altered behind the ingester.

Without these, a suite that reports ``lost=0 duplicated=0`` could be an oracle that never looks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import nats.js.errors
import pytest
from clickhouse_driver import Client
from nats.js import JetStreamContext

from ponix_clickhouse import migrate
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_nats import connect, ensure_jetstream
from ponix_proto import new_envelope_id
from tests.faults.harness import Book, drain_and_judge
from tests.faults.oracle import dead_letter_ids, envelope_content, exact_rows, judge, row_content
from tests.support.client import PipelineClient, envelope
from tests.support.environment import Pipeline
from tests.support.services import ServiceLauncher
from tests.support.waits import eventually

pytestmark = pytest.mark.faults

OCCURRED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def row(envelope_id: str, device: str = "device-1") -> tuple[object, ...]:
    return (envelope_id, "org-1", device, OCCURRED, OCCURRED, "{}")


@pytest.fixture
def table(clickhouse_url: str, clickhouse_db: str) -> Iterator[tuple[Client, str, str]]:
    settings = ClickHouseSettings(url=clickhouse_url, database=clickhouse_db)
    migrate(settings)
    client = Client.from_url(clickhouse_url)
    yield client, clickhouse_db, settings.table
    client.disconnect()


def insert(client: Client, database: str, table: str, rows: list[tuple[object, ...]]) -> None:
    client.execute(
        f"INSERT INTO {database}.{table} "
        "(id, organization_id, end_device_id, occurred_at, processed_at, data) VALUES",
        rows,
    )


def test_the_oracle_reports_a_planted_loss_and_a_planted_duplicate(
    table: tuple[Client, str, str],
) -> None:
    client, database, name = table
    stored = [new_envelope_id() for _ in range(20)]
    insert(client, database, name, [row(i) for i in stored])
    # A redelivery inserted again under the same sorting key: FINAL collapses it, not a duplicate.
    insert(client, database, name, [row(stored[0])])
    # The same id under another sorting key (end_device_id): FINAL cannot collapse it.
    insert(client, database, name, [row(stored[1], device="device-2")])
    # PubAck'd but never stored: the loss.
    phantom = new_envelope_id()

    verdict = judge([*stored, phantom], exact_rows(client, database, name))

    assert verdict.lost == (phantom,)
    assert verdict.duplicated == 1
    assert verdict.duplicated_ids == (stored[1],)
    assert verdict.unexpected == ()
    assert not verdict.clean
    assert "lost=1 duplicated=1" in verdict.summary()


def test_the_oracle_reports_stray_rows(table: tuple[Client, str, str]) -> None:
    client, database, name = table
    published = [new_envelope_id() for _ in range(3)]
    stray = new_envelope_id()
    insert(client, database, name, [row(i) for i in [*published, stray]])
    verdict = judge(published, exact_rows(client, database, name))
    assert verdict.unexpected == (stray,)
    assert verdict.lost == ()
    assert not verdict.clean


def test_the_oracle_is_clean_when_everything_is_stored_once(
    table: tuple[Client, str, str],
) -> None:
    client, database, name = table
    published = [new_envelope_id() for _ in range(50)]
    insert(client, database, name, [row(i) for i in published])
    insert(client, database, name, [row(i) for i in published[:25]])  # redelivered batch
    verdict = judge(published, exact_rows(client, database, name))
    assert verdict.clean, verdict.summary()
    assert (verdict.rows, verdict.stored, verdict.duplicated) == (50, 50, 0)


def test_the_oracle_reports_a_row_whose_content_differs() -> None:
    env = envelope(envelope_id=new_envelope_id(), data={"temperature": 21.5, "count": 3})
    envelope_id, (in_seconds, in_ms) = envelope_content(env.SerializeToString())
    occurred = datetime.fromtimestamp(env.occurred_at.seconds, UTC) + timedelta(
        milliseconds=env.occurred_at.nanos // 1_000_000
    )
    processed = datetime.fromtimestamp(env.processed_at.seconds, UTC) + timedelta(
        milliseconds=env.processed_at.nanos // 1_000_000
    )
    # Keys in another order and a whole number without its ".0": the same document.
    stored = (
        envelope_id,
        "acme",
        "device-1",
        occurred,
        processed,
        '{"count":3,"temperature":21.5}',
    )
    assert row_content(stored, milliseconds=True) == (envelope_id, in_ms)
    whole = tuple(v.replace(microsecond=0) if isinstance(v, datetime) else v for v in stored)
    assert row_content(whole, milliseconds=False) == (envelope_id, in_seconds)

    changed = [
        (envelope_id, "other-org", *stored[2:]),
        (*stored[:2], "device-2", *stored[3:]),
        (*stored[:3], occurred + timedelta(seconds=1), *stored[4:]),
        (*stored[:4], processed - timedelta(milliseconds=1), stored[5]),
        (*stored[:5], '{"count":3,"temperature":21.6}'),
        ("another-id", *stored[1:]),
    ]
    for row in changed:
        _, digest = row_content(row, milliseconds=True)
        verdict = judge(
            [envelope_id],
            {envelope_id: 1},
            expected={envelope_id: in_ms},
            contents={envelope_id: [digest]},
        )
        assert verdict.mismatched == (envelope_id,), row
        assert not verdict.clean


@pytest.fixture
async def dlq(nats_url: str, unique: str) -> AsyncIterator[tuple[JetStreamContext, NatsSettings]]:
    settings = NatsSettings(
        url=nats_url,
        stream=f"S_{unique}",
        subject_prefix=f"env_{unique}",
        consumer=f"c_{unique}",
        dlq_stream=f"S_{unique}_DLQ",
        dlq_subject=f"dlq_{unique}",
        storage="memory",
    )
    nc = await connect(settings, name="ponix-faults-oracle")
    js = nc.jetstream(timeout=2.0)
    await ensure_jetstream(js, settings)
    yield js, settings
    for stream in (settings.stream, settings.dlq_stream):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    await nc.close()


async def test_the_oracle_reports_missing_and_misrouted_dead_letters(
    dlq: tuple[JetStreamContext, NatsSettings],
) -> None:
    js, settings = dlq
    poison = [f"poison-{n}" for n in range(3)]
    valid_but_dead = new_envelope_id()
    for seq, msg_id in enumerate([poison[0], poison[1], valid_but_dead], start=1):
        await js.publish(
            settings.dlq_subject,
            b"original bytes",
            headers={
                "Nats-Msg-Id": f"dlq:{settings.stream}:{seq}",
                "Ponix-Dlq-Msg-Id": msg_id,
                "Ponix-Dlq-Code": "envelope.decode_failed",
            },
        )
    letters = await asyncio.wait_for(dead_letter_ids(js, settings), 10)
    verdict = judge([valid_but_dead], {}, poison=poison, dead_letters=letters)
    assert verdict.dlq_missing == (poison[2],)
    assert verdict.dlq_unexpected == (valid_but_dead,)
    assert verdict.lost == (valid_but_dead,), "a valid envelope in the DLQ is a loss"
    assert verdict.dead_lettered == 3


async def test_the_oracle_fails_when_rows_are_dropped_or_altered_behind_the_ingester(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher
) -> None:
    """End to end: the real ingester stores everything, then rows are deleted and one row's
    ``data`` is changed with mutations it knows nothing of. The verdict must name exactly
    those ids as lost and mismatched."""
    ingester = await launch.start(pipeline)
    book = Book()
    ledger = await client.publish_synthetic(300, seed=31)
    book.add(ledger)
    await client.wait_until_drained(within=30)
    stored = sorted(ledger.ids)
    deleted, altered = stored[:7], stored[7]
    table = pipeline.table
    await client.query(f"ALTER TABLE {table} DELETE WHERE id IN %(ids)s", {"ids": tuple(deleted)})
    await client.query(
        f"ALTER TABLE {table} UPDATE data = '{{\"temperature\": -1.0}}' WHERE id = %(id)s",
        {"id": altered},
    )

    async def mutated() -> bool:
        [(pending,)] = await client.query(
            "SELECT count() FROM system.mutations "
            "WHERE database = %(db)s AND table = %(table)s AND is_done = 0",
            {"db": pipeline.database, "table": pipeline.clickhouse.table},
        )
        return int(pending) == 0

    await eventually(mutated, within=30, what="both mutations done")
    outcome = await drain_and_judge(client, book, within=30)
    await ingester.terminate()

    verdict = outcome.verdict
    assert not verdict.clean
    assert verdict.lost == tuple(deleted)
    assert verdict.mismatched == (altered,)
    assert (verdict.duplicated, verdict.unexpected, verdict.dead_lettered) == (0, (), 0)
