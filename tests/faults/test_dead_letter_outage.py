"""Poison while the dead-letter stream cannot take copies (it was deleted; recreated later).

A copy that fails is nakked, not termed, so the message comes back and tries again. The
server-side consumer has no delivery limit (the ingester counts ``NATS_MAX_DELIVER`` itself), so
the poison keeps coming back past ``max_deliver`` until its copy lands. With a server-side limit
it was dropped on its last delivery, neither stored nor dead-lettered (found by the ack state
machine in tests/unit/fuzz; this is the same thing on real servers).

Settings: ``NATS_MAX_DELIVER=3``, the setting under test (a small budget to outlast); the nak
delays are the shipped ones.
"""

from __future__ import annotations

import time

import pytest

from ponix_nats import ensure_jetstream
from tests.faults.figures import Figures, record
from tests.faults.harness import Book, drain_and_judge, service_rss
from tests.support.pipeline import Ledger, Pipeline, PipelineClient, ServiceLauncher, eventually

MAX_DELIVER = 3


@pytest.mark.faults
async def test_poison_survives_a_dead_letter_outage_longer_than_its_deliveries(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    started = time.monotonic()
    pipeline = pipeline.with_env(NATS_MAX_DELIVER=MAX_DELIVER)
    figures = Figures(
        "dead_letter_outage", "short", faults={"max_deliver": MAX_DELIVER, "dlq": "deleted"}
    )
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        book.add(await client.publish_synthetic(100, seed=13))
        await client.js.delete_stream(client.settings.dlq_stream)
        poison = Ledger()
        poison.published.append(await client.publish_raw(b"\xff not an envelope", msg_id="p-1"))
        book.add(poison, poison=True)

        async def past_max_deliver() -> bool:
            failed = (await ingester.metrics()).value(
                "ponix_envelopes_nakked_total", code="nats.dead_letter_failed"
            )
            return failed > MAX_DELIVER

        # One failed copy per delivery: more than MAX_DELIVER of them is where a server-side
        # limit would have dropped the poison.
        await eventually(past_max_deliver, within=40, what="the poison delivered past max_deliver")
        await ensure_jetstream(client.js, client.settings)  # the DLQ stream is back
        book.add(await client.publish_synthetic(100, seed=14))
        outcome = await drain_and_judge(client, book, within=60)
        nakked = (await ingester.metrics()).value(
            "ponix_envelopes_nakked_total", code="nats.dead_letter_failed"
        )
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.notes = {"dead_letter_failed_naks": nakked}
    record(figures)
    assert nakked > MAX_DELIVER, "the DLQ outage did not outlast max_deliver"
    assert outcome.verdict.clean, outcome.verdict.summary()
