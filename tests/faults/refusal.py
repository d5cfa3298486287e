"""The store refuses inserts for a while, and answers everything else: one scenario shape for
the table detached, too many parts, a read-only user, slow inserts and schema drift.

The ingester runs at the shipped defaults (the scenario names what it changes). Envelopes are
published at a steady rate before, during and after the refusal. While the store refuses, the
writer must hold its batch and retry it in place: ``/readyz`` turns 503, fetching pauses, RSS
stays flat. After it, the oracle must find every valid envelope stored once, with its content,
none in the DLQ, no nak and no message delivered twice (``max_deliveries`` 1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ponix_producer import OutgoingEnvelope
from tests.faults.figures import Figures, record
from tests.faults.harness import (
    Background,
    Book,
    Outcome,
    RssWatch,
    drain_and_judge,
    overrides,
    readyz,
    service_rss,
)
from tests.support.client import PipelineClient
from tests.support.environment import Pipeline
from tests.support.services import ServiceLauncher, ServiceProcess
from tests.support.waits import eventually

Action = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class Fault:
    """How the scenario makes the store refuse inserts, and how it ends that."""

    refuse: Action
    restore: Action
    forgets_content: bool = False
    """The refusal destroys stored content (a dropped column): rows stored before it are checked
    for id and count only."""


@dataclass
class Sample:
    at: float
    rss_mb: float
    held_rows: float
    in_flight_rows: float
    in_flight_bytes: float
    ack_pending: int
    readyz: int | None


@dataclass
class Run:
    """What one refusal run saw; ``figures`` is recorded already."""

    outcome: Outcome
    figures: Figures
    samples: list[Sample] = field(default_factory=list)
    metrics_after: dict[str, float] = field(default_factory=dict)

    @property
    def readyz_while_held(self) -> set[int | None]:
        return {s.readyz for s in self.samples if s.held_rows > 0}

    def rss_halves(self) -> tuple[float, float]:
        """The largest RSS in the first and in the second half of the refusal."""
        middle = len(self.samples) // 2
        first = max((s.rss_mb for s in self.samples[:middle]), default=0.0)
        second = max((s.rss_mb for s in self.samples[middle:]), default=0.0)
        return first, second


async def _sample(ingester: ServiceProcess, client: PipelineClient, at: float) -> Sample:
    metrics = await ingester.metrics()
    info = await client.consumer_info()
    return Sample(
        at=round(at, 1),
        rss_mb=service_rss(ingester) or 0.0,
        held_rows=metrics.value("ponix_held_rows"),
        in_flight_rows=metrics.value("ponix_in_flight_rows"),
        in_flight_bytes=metrics.value("ponix_in_flight_bytes"),
        ack_pending=info.num_ack_pending or 0,
        readyz=await readyz(ingester),
    )


async def refusal(
    client: PipelineClient,
    launch: ServiceLauncher,
    *,
    scenario: str,
    size: str,
    fault: Fault,
    refused_for: float,
    rate: float,
    faults: dict[str, Any] | None = None,
    envelopes: Callable[[], OutgoingEnvelope] | None = None,
    chunk: int = 200,
    seed: int = 0,
    warm_up: float = 2.0,
    drain_within: float | None = None,
    ingester: ServiceProcess | None = None,
    pipeline: Pipeline | None = None,
) -> Run:
    """Start the ingester (unless given), publish at ``rate``, refuse for ``refused_for``
    seconds from the first held batch, restore, drain, judge and record. ``pipeline``: the
    ingester's, when it differs from the client's (a setting that only the service reads)."""
    started = time.monotonic()
    pipeline = pipeline or client.pipeline
    figures = Figures(
        scenario, size, faults={"refused_s": refused_for, "rate": rate, **(faults or {})}
    )
    book = Book()
    samples: list[Sample] = []
    ingester = ingester or await launch.start(pipeline)
    figures.rss_start_mb = service_rss(ingester)
    rss = RssWatch(ingester)
    with (
        rss,
        Background(client, book, rate=rate, chunk=chunk, seed=seed, make=envelopes) as publishing,
    ):

        async def stored() -> bool:
            return (await client.counts()).rows > 0

        await eventually(stored, within=30, what="rows stored before the fault")
        # Pacing the warm-up: the pipeline runs with the store healthy for a while.
        await asyncio.sleep(warm_up)
        figures.rss_start_mb = service_rss(ingester)
        await fault.refuse()
        if fault.forgets_content:
            book.expected.clear()
        refused_at = time.monotonic()

        async def holding() -> float:
            return (await ingester.metrics()).value("ponix_holds_total")

        await eventually(holding, within=60, what="the writer holding a batch", every=0.2)
        held_at = time.monotonic()
        until = held_at + refused_for
        every = min(2.0, max(0.25, refused_for / 20))
        while time.monotonic() < until:
            samples.append(await _sample(ingester, client, time.monotonic() - held_at))
            # Sampling the refusal at a steady pace: nothing to wait for.
            await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))
        samples.append(await _sample(ingester, client, time.monotonic() - held_at))
        during = await ingester.metrics()
        await fault.restore()
        restored_at = time.monotonic()
        rss.mark()
        await publishing.stop()
        outcome = await drain_and_judge(
            client, book, within=drain_within or (90 if size == "short" else 600)
        )
        recovered = time.monotonic() - restored_at
        rss_catching_up = rss.peak()
    after = await ingester.metrics()
    figures.rss_end_mb = service_rss(ingester)
    await ingester.terminate()
    figures.take_outcome(outcome, started)
    figures.settings = overrides(pipeline)
    figures.rss_max_mb = rss.overall
    run = Run(outcome, figures, samples)
    first, second = run.rss_halves()
    figures.notes = {
        "held_after_s": round(held_at - refused_at, 2),
        "recovery_s": round(recovered, 2),
        "failed_inserts": during.value("ponix_insert_failures_total"),
        "failed_by_reason": {
            labels["code"]: value
            for name, labels, value in during.samples
            if name == "ponix_insert_failures_total" and value
        },
        "holds": after.value("ponix_holds_total"),
        "max_held_rows": max(s.held_rows for s in samples),
        "max_in_flight_rows": max(s.in_flight_rows for s in samples),
        "max_in_flight_mb": round(max(s.in_flight_bytes for s in samples) / 2**20, 1),
        "max_ack_pending": max(s.ack_pending for s in samples),
        "readyz_while_held": sorted(str(s) for s in run.readyz_while_held),
        "rss_max_first_half_mb": first,
        "rss_max_second_half_mb": second,
        "rss_max_catching_up_mb": rss_catching_up,
        "dead_lettered": after.value("ponix_envelopes_dead_lettered_total"),
        "in_progress": outcome.settled.get("in_progress", 0),
    }
    run.metrics_after = {
        "nakked": after.value("ponix_envelopes_nakked_total"),
        "dead_lettered": after.value("ponix_envelopes_dead_lettered_total"),
    }
    record(figures)
    return run


def assert_held_in_place(run: Run) -> None:
    """The contract for a store failure: nothing lost, nothing in the DLQ, no nak, no second
    delivery; the writer held (``/readyz`` 503 while it did)."""
    verdict = run.outcome.verdict
    assert verdict.clean, verdict.summary()
    assert verdict.valid_dead_lettered == (), f"{len(verdict.valid_dead_lettered)} valid in DLQ"
    assert verdict.dead_lettered == 0, f"{verdict.dead_lettered} dead letters"
    assert run.outcome.naks == 0, f"{run.outcome.naks} naks for a store failure"
    assert run.outcome.max_deliveries == 1, (
        f"a message was delivered {run.outcome.max_deliveries} times"
    )
    assert run.outcome.redeliveries == 0, f"{run.outcome.redeliveries} redeliveries"
    assert 503 in run.readyz_while_held, f"/readyz while held: {run.readyz_while_held}"


def failed_for(run: Run, reason: str) -> float:
    """Failed inserts during the refusal whose reason was ``reason`` (``unknown_table``, ...)."""
    return float(run.figures.notes["failed_by_reason"].get(reason, 0.0))
