"""Scenario 7: the same envelope arrives more than once, and the table shows it once.

* Republished under the same ``Nats-Msg-Id`` inside the duplicate window: JetStream drops it.
* Republished under another ``Nats-Msg-Id`` (outside the window, or a producer that makes its
  own header): stored twice in the stream, inserted twice, collapsed by ReplacingMergeTree FINAL.
* Redriven from the DLQ after its row was already stored (a dead letter whose row made it, as
  after a max_deliver race): inserted again, still one row; the DLQ is empty afterwards.
"""

from __future__ import annotations

import time

import pytest

from ponix_nats import redrive
from tests.faults.figures import Figures, record
from tests.faults.harness import Book, drain_and_judge, ids_of, service_rss
from tests.support.pipeline import Ledger, Pipeline, PipelineClient, ServiceLauncher


async def duplicates(
    pipeline: Pipeline, launch: ServiceLauncher, *, messages: int, size: str
) -> None:
    started = time.monotonic()
    figures = Figures("duplicate_publishes_and_redrive", size)
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        first = await client.publish_synthetic(messages, seed=7)
        book.add(first)
        stored = first.stored
        # 1. The same bytes under the same Nats-Msg-Id: JetStream answers "duplicate".
        again = Ledger()
        for p in stored[: messages // 2]:
            again.published.append(await client.publish_raw(p.payload, msg_id=p.msg_id))
        assert all(p.ack.duplicate for p in again.published)
        # 2. The same envelope under a new Nats-Msg-Id: a second stream message.
        renamed = 0
        for p in stored[: messages // 4]:
            ack = await client.publish_raw(p.payload, msg_id=f"again:{p.msg_id}")
            assert not ack.ack.duplicate
            renamed += 1
        await client.wait_until_drained(within=60)
        # 3. A stored envelope in the DLQ (no original msg id: redrive makes a fresh one).
        redriven_ids = ids_of(first)[:10]
        for p in stored[:10]:
            await client.js.publish(
                client.settings.dlq_subject,
                p.payload,
                headers={
                    "Nats-Msg-Id": f"dlq:planted:{p.msg_id}",
                    "Ponix-Dlq-Code": "clickhouse.insert_failed",
                    "Ponix-Dlq-Stream": client.settings.stream,
                    "Ponix-Dlq-Sequence": str(p.ack.seq),
                    "Ponix-Dlq-Subject": p.subject,
                },
            )
        results = await redrive(client.js, client.settings, "all")
        assert [r.status for r in results] == ["republished"] * 10
        outcome = await drain_and_judge(client, book, within=60 if size == "short" else 600)
        counts = await client.counts()
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.notes = {
        "same_msg_id_republished": len(again.published),
        "new_msg_id_republished": renamed,
        "redriven": len(redriven_ids),
        "physical_rows": counts.physical_rows,
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert counts.rows == counts.distinct_ids == messages
    assert outcome.verdict.dead_lettered == 0, "redrive must empty the DLQ"


@pytest.mark.faults
async def test_duplicate_publishes_and_a_redrive_leave_one_row(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    await duplicates(pipeline, launch, messages=400, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(600)
async def test_duplicate_publishes_at_scale(pipeline: Pipeline, launch: ServiceLauncher) -> None:
    await duplicates(pipeline, launch, messages=20_000, size="long")
