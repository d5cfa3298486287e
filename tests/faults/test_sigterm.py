"""Scenario 2: SIGTERM while batches are being inserted.

The ingester stops fetching, stores and acks what it holds, drains NATS and exits 0 within its
closer timeouts (docs/architecture.md: SIGTERM to exit <= 5 s). Right after the exit nothing
awaits an ack, and the ingester that finishes the stream redelivers nothing.

Settings: the shipped defaults.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.figures import Figures, alive, process_tree, record
from tests.faults.harness import Book, drain_and_judge, service_rss
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

EXIT_WITHIN = 5.0  # docs/architecture.md


async def sigterm_during_flush(
    pipeline: Pipeline, launch: ServiceLauncher, *, messages: int, stops: int, size: str
) -> None:
    started = time.monotonic()
    figures = Figures("sigterm_during_flush", size, faults={"sigterms": stops})
    book = Book()
    exits: list[float] = []
    async with PipelineClient.connect(pipeline, provision=True) as client:
        book.add(await client.publish_synthetic(messages))
        for stop in range(stops):
            ingester = await launch.start(pipeline)
            figures.rss_start_mb = figures.rss_start_mb or service_rss(ingester)
            target = (stop + 1) * messages // (stops + 2)

            async def flowing(target: int = target) -> bool:
                counts = await client.counts()
                return counts.physical_rows >= target

            # SIGTERM while rows are flowing: some stored, more fetched and in flight.
            await eventually(flowing, within=30, what=f"{target} rows stored")
            figures.rss_end_mb = service_rss(ingester)
            family = process_tree(ingester.pid)
            exit_ = await ingester.terminate(kill_after=20)
            left = alive(family[1:])
            assert not left, f"worker processes still running after a clean exit: {left}"
            exits.append(round(exit_.seconds, 2))
            assert exit_.code == 0, f"exit {exit_}:\n{ingester.tail()}"
            # Looked at well within ack_wait (30 s): a message left unacked is still pending.
            info = await client.consumer_info()
            assert info.num_ack_pending == 0, f"{info.num_ack_pending} left unacked"
        last = await launch.start(pipeline, name="ingester-last")
        outcome = await drain_and_judge(client, book, within=60 if size == "short" else 600)
        await last.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.notes = {"exit_seconds": exits}
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert outcome.redeliveries == 0, "a clean stop must leave nothing to redeliver"
    assert outcome.max_deliveries == 1
    assert max(exits) <= EXIT_WITHIN, f"SIGTERM to exit took {exits}"


@pytest.mark.faults
async def test_sigterm_during_flush_acks_everything_and_exits_0(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    await sigterm_during_flush(pipeline, launch, messages=6_000, stops=1, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_sigterm_during_flush_repeatedly(pipeline: Pipeline, launch: ServiceLauncher) -> None:
    await sigterm_during_flush(pipeline, launch, messages=200_000, stops=10, size="long")
