"""Issue #3, idempotence: an envelope's id is stable under redelivery and duplicates of it
become one row, whether JetStream drops them (same Nats-Msg-Id) or the table collapses them
(ReplacingMergeTree read with FINAL)."""

from __future__ import annotations

from datetime import UTC

import pytest

from ponix_producer import SyntheticEnvelopes
from ponix_proto import deterministic_envelope_id
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, envelope

pytestmark = pytest.mark.integration


async def test_an_envelope_without_id_is_stored_under_a_deterministic_id_that_survives_replay(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher, unique: str
) -> None:
    first = await launch.start(pipeline)
    legacy = envelope(envelope_id=None)  # as the seed's producers send it: no id
    occurred_at = legacy.occurred_at.ToDatetime(UTC)
    payload = legacy.SerializeToString()

    # The same bytes four times, as four different messages: two Nats-Msg-Ids, two without.
    by_msg_id = [await client.publish_raw(payload, msg_id=f"legacy-{unique}-{n}") for n in (1, 2)]
    by_sequence = [await client.publish_raw(payload, msg_id=None) for _ in range(2)]
    stream = pipeline.nats.stream
    expected = {deterministic_envelope_id(f"legacy-{unique}-{n}", occurred_at) for n in (1, 2)} | {
        deterministic_envelope_id(f"{stream}:{p.ack.seq}", occurred_at) for p in by_sequence
    }
    assert len(expected) == 4
    assert all(not p.ack.duplicate for p in by_msg_id)

    await client.wait_until_drained(within=30)
    assert await client.dead_letters() == []  # no id is not poison
    assert await client.stored_ids() == expected
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (4, 4)

    # A second durable consumer replays the stream into the same table: the same messages
    # (sequence, headers, bytes) delivered again, as a redelivery would. Same ids, no new rows.
    assert (await first.terminate()).code == 0
    replay = pipeline.with_env(NATS_CONSUMER=f"replay_{unique}")
    await launch.start(replay)
    info = await client.wait_until_drained(within=30, consumer=replay.nats.consumer)
    assert info.delivered.stream_seq == 4
    assert await client.stored_ids() == expected
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (4, 4)
    assert counts.physical_rows >= 4  # up to 8 until ClickHouse merges the replayed parts


async def test_a_duplicate_publish_with_the_same_msg_id_is_dropped_and_stored_once(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher
) -> None:
    await launch.start(pipeline)
    fleet = SyntheticEnvelopes(seed=11)
    once, other = fleet.next(), fleet.next()

    first = await client.publish_raw(once.payload, msg_id=once.envelope_id)
    again = await client.publish_raw(once.payload, msg_id=once.envelope_id)
    await client.publish_raw(other.payload, msg_id=other.envelope_id)

    assert not first.ack.duplicate
    assert again.ack.duplicate
    assert again.ack.seq == first.ack.seq  # JetStream points at the message it kept
    assert (await client.stream_info()).state.messages == 2

    info = await client.wait_until_drained(within=30)
    assert info.delivered.consumer_seq == 2
    assert await client.stored_ids() == {once.envelope_id, other.envelope_id}
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids, counts.physical_rows) == (2, 2, 2)


async def test_the_same_envelope_id_delivered_twice_is_one_row_through_final(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher, unique: str
) -> None:
    await launch.start(pipeline)
    fleet = SyntheticEnvelopes(seed=13)
    twice = fleet.next()

    # Different Nats-Msg-Ids, so JetStream keeps both and the consumer delivers both: what a
    # redelivery after a crash between insert and ack looks like to the table. The second copy
    # goes in after the first is stored, so the two rows are in different parts.
    await client.publish_raw(twice.payload, msg_id=f"{twice.envelope_id}-a")
    await client.wait_until_drained(within=30)
    await client.publish_raw(twice.payload, msg_id=f"{twice.envelope_id}-b")
    info = await client.wait_until_drained(within=30)

    assert (await client.stream_info()).state.messages == 2
    assert info.delivered.consumer_seq == 2
    assert await client.stored_ids() == {twice.envelope_id}
    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (1, 1)
    assert counts.physical_rows in (1, 2)  # 2 until a background merge collapses them
