"""Issue #3 end to end through the seed's entry point: ``python -m ponix_all_in_one`` runs the
producer and the ingester under one runner, stores what it produced, and exits 0 on SIGTERM."""

from __future__ import annotations

import pytest

from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

pytestmark = pytest.mark.integration

ENVELOPES = 2_000


async def test_all_in_one_stores_what_its_producer_publishes_and_exits_0_on_sigterm(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher
) -> None:
    service = await launch.start(
        pipeline,
        service="all-in-one",
        PONIX_PROCESSES="producer,ingester",
        PRODUCER_COUNT=ENVELOPES,
        PRODUCER_RATE=20_000,
    )

    async def all_stored() -> bool:
        return (await client.counts()).rows >= ENVELOPES

    await eventually(all_stored, within=30, what=f"{ENVELOPES} rows stored")
    info = await client.wait_until_drained(within=30)
    assert info.delivered.consumer_seq == info.delivered.stream_seq == ENVELOPES
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (ENVELOPES, ENVELOPES)
    assert await client.dead_letters() == []

    stopped = await service.terminate()
    assert stopped.code == 0
    assert stopped.seconds < 5.0
    assert service.running is False
    assert service.events("producer stopped", published=ENVELOPES)
