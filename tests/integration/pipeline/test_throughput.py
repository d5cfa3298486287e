"""Issue #3, the happy path at volume: every published envelope becomes exactly one row."""

from __future__ import annotations

import time

import pytest

from ponix_proto import pb
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher

pytestmark = pytest.mark.integration

ENVELOPES = 10_000


async def test_every_published_envelope_is_stored_exactly_once(
    pipeline: Pipeline,
    client: PipelineClient,
    launch: ServiceLauncher,
    record_property: pytest.RecordProperty,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The backlog goes in before the ingester starts, so the measured rate is ingestion alone.
    await client.provision()
    ledger = await client.publish_synthetic(ENVELOPES, seed=3)
    assert not ledger.failed
    assert len(ledger.ids) == ENVELOPES

    ingester = await launch.start(pipeline)
    started = time.monotonic()
    info = await client.wait_until_drained(within=60)
    elapsed = time.monotonic() - started

    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (ENVELOPES, ENVELOPES)
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    # Delivered once each: nothing was nakked or redelivered on the way.
    assert info.delivered.consumer_seq == info.delivered.stream_seq == ENVELOPES
    assert await client.dead_letters() == []

    stored = await client.stored_rows()
    assert stored.keys() == ledger.ids
    for published in ledger.published:
        env = pb.ProcessedEnvelope.FromString(published.payload)
        row = stored[env.id]
        assert (row.organization_id, row.end_device_id) == (env.organization_id, env.end_device_id)
        assert row.data == pb.struct_to_dict(env.data)
        assert int(row.occurred_at.timestamp()) == env.occurred_at.seconds

    rate = ENVELOPES / elapsed
    record_property("rows_per_second", round(rate))
    with capsys.disabled():
        print(f"\n[throughput] {ENVELOPES} envelopes stored in {elapsed:.2f}s: {rate:,.0f} rows/s")

    stopped = await ingester.terminate()
    assert stopped.code == 0
