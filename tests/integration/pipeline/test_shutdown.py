"""Issue #3, stopping the ingester: a crash (SIGKILL) loses nothing and duplicates nothing
through FINAL; a clean stop (SIGTERM) stores and acks what it holds, so nothing comes back."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

pytestmark = pytest.mark.integration


async def test_a_killed_ingester_restarted_mid_stream_stores_every_envelope_exactly_once(
    pipeline: Pipeline,
    client: PipelineClient,
    launch: ServiceLauncher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    envelopes = 5_000
    # A short ack_wait brings the killed process's unacked messages back to its successor
    # quickly; small, slow-to-fill batches keep messages in flight at any moment.
    pipeline = pipeline.with_env(
        NATS_ACK_WAIT=2,
        NATS_BATCH_SIZE=100,
        CLICKHOUSE_BATCH_MAX_ROWS=500,
        CLICKHOUSE_BATCH_MAX_LATENCY=0.5,
    )
    doomed = await launch.start(pipeline, name="ingester-killed")
    publishing = asyncio.create_task(client.publish_synthetic(envelopes, rate=2_500, seed=5))

    async def well_into_the_stream_holding_unacked() -> bool:
        info = await client.consumer_info()
        return info.delivered.stream_seq >= 1_000 and info.num_ack_pending > 0

    await eventually(
        well_into_the_stream_holding_unacked,
        within=30,
        what="1000 envelopes delivered and some of them unacked",
    )
    killed = await doomed.kill()
    assert killed.code == -9
    at_kill = await client.consumer_info()

    await launch.start(pipeline, name="ingester-restarted")
    ledger = await publishing
    assert not ledger.failed
    assert len(ledger.ids) == envelopes
    info = await client.wait_until_drained(within=30)

    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (envelopes, envelopes)
    assert await client.stored_ids() == ledger.ids
    assert await client.dead_letters() == []
    # What the killed process held unacked was delivered again to its successor.
    assert at_kill.num_ack_pending > 0
    redelivered = info.delivered.consumer_seq - info.delivered.stream_seq
    assert redelivered > 0
    with capsys.disabled():
        print(
            f"\n[sigkill] unacked at kill: {at_kill.num_ack_pending}, redelivered: {redelivered}, "
            f"physical rows: {counts.physical_rows} for {envelopes} envelopes"
        )


async def test_sigterm_with_rows_buffered_inserts_acks_and_exits_0_within_5s(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher
) -> None:
    envelopes = 1_000
    # Nothing flushes on its own: no size limit is reached and the latency is a minute, so
    # every row is still in the writer's buffer, unacked, when SIGTERM arrives.
    pipeline = pipeline.with_env(CLICKHOUSE_BATCH_MAX_LATENCY=60, CLICKHOUSE_BATCH_MAX_ROWS=5_000)
    ingester = await launch.start(pipeline)
    ledger = await client.publish_synthetic(envelopes, seed=17)

    async def all_delivered_none_acked() -> bool:
        info = await client.consumer_info()
        return info.num_pending == 0 and info.num_ack_pending == envelopes

    await eventually(all_delivered_none_acked, within=30, what="every envelope held unacked")
    assert (await client.counts()).physical_rows == 0

    stopped = await ingester.terminate()
    assert stopped.code == 0
    assert not stopped.forced
    assert stopped.seconds < 5.0

    # Right after exit, with no waiting: the server already has every ack.
    info = await client.consumer_info()
    assert (info.num_pending, info.num_ack_pending, info.num_redelivered) == (0, 0, 0)
    assert info.delivered.consumer_seq == info.delivered.stream_seq == envelopes
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids, counts.physical_rows) == (envelopes,) * 3
    assert await client.stored_ids() == ledger.ids
    assert ingester.events("service stopped", exit_code=0)
