"""Scenario 1: SIGKILL the ingester at random points under continuous publishing, restart it.

Whatever was inserted but not yet acked comes back after ack_wait and is inserted again under
the same sorting key, so FINAL shows it once: 0 lost, 0 duplicated, no valid envelope in the DLQ
(a crash counts against NATS_MAX_DELIVER, 10: the figures show how close the kills came).

Settings: the long run is at the shipped defaults (``ack_wait`` 30 s). The short one
(``make test``) sets ``NATS_ACK_WAIT=5``: what a crash leaves unacked comes back 5 s later
instead of 30, which changes when, not whether, it is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from tests.faults.figures import Figures, alive, process_tree, record
from tests.faults.harness import Background, Book, drain_and_judge, service_rss
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

SHORT_ACK_WAIT = 5


async def sigkill_cycles(
    pipeline: Pipeline, launch: ServiceLauncher, *, cycles: int, rate: float, size: str, seed: int
) -> None:
    rng = random.Random(seed)
    started = time.monotonic()
    if size == "short":
        pipeline = pipeline.with_env(NATS_ACK_WAIT=SHORT_ACK_WAIT)
    ack_wait = pipeline.nats.ack_wait
    figures = Figures("sigkill_under_load", size, faults={"kills": cycles, "rate": rate})
    book = Book()
    rss: list[float] = []
    orphans: list[int] = []
    async with PipelineClient.connect(pipeline, provision=True) as client:
        ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        with Background(client, book, rate=rate, seed=seed) as publishing:
            for cycle in range(cycles):
                # Random points: mid-fetch, mid-insert, between insert and ack, mid-ack.
                await asyncio.sleep(rng.uniform(0.1, 0.7))
                rss.append(service_rss(ingester) or 0.0)
                family = process_tree(ingester.pid)
                await ingester.kill()
                orphans += await _survivors(family[1:])
                ingester = await launch.start(pipeline, name=f"ingester-{cycle + 2}")
            await publishing.stop()
        outcome = await drain_and_judge(client, book, within=60 + ack_wait * 3)
        rss.append(service_rss(ingester) or 0.0)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.rss_end_mb = rss[-1]
    figures.rss_max_mb = max(rss)
    figures.notes = {
        "unconfirmed": len(book.unconfirmed),
        "drain_s": round(outcome.drain_seconds, 2),
        "orphaned_children": len(orphans),
    }
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert outcome.verdict.dead_lettered == 0, "a crash dead-lettered valid envelopes"
    assert not orphans, f"children that outlived their SIGKILLed ingester: {orphans}"
    assert outcome.verdict.published >= cycles * rate * 0.2


async def _survivors(children: list[int], grace: float = 5.0) -> list[int]:
    """Children (worker processes) still running ``grace`` seconds after their parent died."""

    async def gone() -> bool:
        return not alive(children)

    with contextlib.suppress(AssertionError):
        await eventually(gone, within=grace, what="children gone")
    return alive(children)


@pytest.mark.faults
async def test_sigkill_under_load_loses_and_duplicates_nothing(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    await sigkill_cycles(pipeline, launch, cycles=5, rate=300, size="short", seed=1)


@pytest.mark.faults_long
@pytest.mark.timeout(1200)
async def test_sigkill_under_load_50_cycles(pipeline: Pipeline, launch: ServiceLauncher) -> None:
    await sigkill_cycles(pipeline, launch, cycles=50, rate=1500, size="long", seed=50)
