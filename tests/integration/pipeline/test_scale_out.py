"""Issue #5, scale-out: two ingester processes on one durable consumer and one table store
every envelope exactly once between them, and neither starves."""

from __future__ import annotations

import pytest

from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

pytestmark = pytest.mark.integration

ENVELOPES = 20_000
FAIR_SHARE = 0.2


async def test_two_ingesters_on_one_consumer_store_each_envelope_once_and_share_the_work(
    pipeline: Pipeline,
    client: PipelineClient,
    launch: ServiceLauncher,
    record_property: pytest.RecordProperty,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Started together, as replicas are: both migrate and provision the same table, stream and
    # consumer at once. Both are consuming before the first envelope is published, so neither
    # gets a head start.
    ingesters = [await launch.start(pipeline, name=f"ingester-{n}", ready=False) for n in (1, 2)]
    for ingester in ingesters:
        await ingester.wait_ready()
    ledger = await client.publish_synthetic(ENVELOPES, seed=29)
    assert not ledger.failed
    assert len(ledger.ids) == ENVELOPES

    info = await client.wait_until_drained(within=60)
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (ENVELOPES, ENVELOPES)
    assert await client.stored_ids() == ledger.ids
    assert await client.dead_letters() == []

    async def acked_by_each() -> list[int] | None:
        acked = [
            int((await ingester.metrics()).value("ponix_envelopes_acked_total"))
            for ingester in ingesters
        ]
        return acked if sum(acked) >= ENVELOPES else None

    acked = await eventually(acked_by_each, within=10, what="acks counted by the two ingesters")
    shares = [n / ENVELOPES for n in acked]
    record_property("acked_split", acked)
    with capsys.disabled():
        print(
            f"\n[scale-out] acked {acked[0]} / {acked[1]} ({shares[0]:.0%} / {shares[1]:.0%}); "
            f"physical rows {counts.physical_rows}, "
            f"redelivered {info.delivered.consumer_seq - info.delivered.stream_seq}"
        )
    # Redeliveries are not expected, but would be counted twice: the sum may exceed ENVELOPES.
    assert sum(acked) == info.delivered.consumer_seq
    assert min(shares) >= FAIR_SHARE, acked

    for ingester in ingesters:
        assert (await ingester.terminate()).code == 0
