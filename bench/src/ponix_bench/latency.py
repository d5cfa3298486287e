"""Second phase: publish -> queryable latency at half the sustained rate, SIGTERM under load,
and (optionally) RSS over a long steady load.

The ingester runs as shipped on a stream of its own (``BENCH_LATENCY``), so the first phase's
messages do not queue ahead of the timed ones. Visibility is polled from ClickHouse: a
query sees the parts that existed when it started, so an envelope first returned by a query is
stamped with that query's start time (a latency over-estimated by at most one poll period).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from clickhouse_driver import Client
from nats.aio.client import Client as NatsClient

from ponix_bench.procs import Contender, memory, spawn
from ponix_bench.publish import generate, publish_at_rate
from ponix_bench.report import Latency, Soak
from ponix_clickhouse import migrate
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_nats import ensure_jetstream
from ponix_producer.synthetic import OutgoingEnvelope


class Bench(Protocol):
    """What the latency and soak phases need of the run (``ponix_bench.harness.Bench``)."""

    nats_settings: NatsSettings
    clickhouse_url: str
    workdir: Path
    ingester_python: str

    @property
    def latency_storage(self) -> Literal["file", "memory"]: ...

    def clickhouse_settings(self, database: str = "") -> ClickHouseSettings: ...

    def ingester_env(
        self, consumer: str, database: str, extra: Mapping[str, str]
    ) -> dict[str, str]: ...


POLL = 0.05
SETTLE = 1.0
# Envelopes published this long before the SIGTERM must all be stored; later ones may still be
# unfetched when the ingester stops, which is correct (they stay in the stream).
SIGTERM_MARGIN = 2.0
SIGTERM_LOAD = 2.0


def _stream_settings(bench: Bench, tag: str) -> NatsSettings:
    return bench.nats_settings.model_copy(
        update={
            "storage": bench.latency_storage,
            "stream": f"BENCH_{tag.upper()}",
            "subject_prefix": f"bench_{tag}",
            "dlq_stream": f"BENCH_{tag.upper()}_DLQ",
            "dlq_subject": f"bench_{tag}_dlq",
            "consumer": f"bench_{tag}",
        }
    )


async def _start_ingester(
    bench: Bench, nc: NatsClient, tag: str
) -> tuple[NatsSettings, str, Contender]:
    settings = _stream_settings(bench, tag)
    database = f"bench_{tag}"
    js = nc.jetstream()
    await ensure_jetstream(js, settings)
    await asyncio.to_thread(migrate, bench.clickhouse_settings(database))
    env = bench.ingester_env(
        settings.consumer,
        database,
        {
            "NATS_STREAM": settings.stream,
            "NATS_SUBJECT_PREFIX": settings.subject_prefix,
            "NATS_DLQ_STREAM": settings.dlq_stream,
            "NATS_DLQ_SUBJECT": settings.dlq_subject,
            "NATS_STORAGE": settings.storage,
        },
    )
    contender = await spawn(
        tag, [[bench.ingester_python, "-m", "ponix_ingester"]], env, bench.workdir
    )
    deadline = time.monotonic() + 90
    while True:
        contender.check_alive()
        info = await js.consumer_info(settings.stream, settings.consumer)
        if info.num_waiting:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tag}: the ingester did not start fetching within 90s")
        await asyncio.sleep(0.05)
    return settings, database, contender


class Visibility:
    """Polls ClickHouse for the envelopes published and not yet seen."""

    def __init__(self, url: str, database: str) -> None:
        self._client = Client.from_url(url)
        self._query = f"SELECT id FROM `{database}`.`processed_envelopes` WHERE id >= %(low)s"
        self.published: dict[str, float] = {}
        self.unseen: dict[str, float] = {}
        self.latencies: dict[str, float] = {}
        self.polled = asyncio.Event()

    def on_sent(self, env: OutgoingEnvelope, at: float) -> None:
        self.published[env.envelope_id] = at
        self.unseen[env.envelope_id] = at

    def poll_once(self) -> None:
        if not self.unseen:
            return
        low = min(self.unseen)
        started = time.monotonic()
        for (envelope_id,) in self._client.execute(self._query, {"low": low}):
            sent = self.unseen.pop(envelope_id, None)
            if sent is not None:
                self.latencies[envelope_id] = started - sent

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.poll_once)
            self.polled.set()
            await asyncio.sleep(POLL)

    async def wait_seen(self, due: set[str], within: float) -> None:
        """Until every id in ``due`` was seen, or ``within`` seconds passed."""
        deadline = time.monotonic() + within
        while due & self.unseen.keys() and time.monotonic() < deadline:
            self.polled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.polled.wait(), max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._client.disconnect()


def keep_log(log: Path, what: str) -> Path:
    """A copy of ``log`` outside the bench's workdir (which is removed at the end), in the
    temporary directory, named after ``what`` and the UTC time."""
    at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = Path(tempfile.gettempdir()) / f"ponix-bench-{what}-{at}.log"
    shutil.copyfile(log, kept)
    return kept


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def measure_latency(
    bench: Bench, nc: NatsClient, sustained: float, seconds: float, *, limit: int
) -> Latency:
    rate = sustained / 2
    budget = max(1, min(limit, int(rate * seconds)))
    # Enough for the timed part and the SIGTERM under load after it.
    envelopes = generate(budget + int(rate * (SIGTERM_LOAD + 10)))
    settings, database, contender = await _start_ingester(bench, nc, "latency")
    js = nc.jetstream()
    seen = Visibility(bench.clickhouse_url, database)
    try:
        await asyncio.sleep(SETTLE)
        idle = memory(contender.pids, "VmRSS")
        stop_publishing = asyncio.Event()
        stop_polling = asyncio.Event()
        publisher = asyncio.ensure_future(
            publish_at_rate(nc, settings, rate, envelopes, stop_publishing, seen.on_sent)
        )
        poller = asyncio.ensure_future(seen.run(stop_polling))
        while len(seen.published) < budget:
            if publisher.done():
                publisher.result()
            contender.check_alive()
            await asyncio.sleep(0.05)
        # Under load (still publishing): SIGTERM, and time the exit.
        await asyncio.sleep(min(SIGTERM_LOAD, max(0.2, budget / rate / 4)))
        peak = memory(contender.pids, "VmHWM")
        sigterm_at = time.monotonic()
        stop_seconds, codes = await contender.stop()
        stop_publishing.set()
        await publisher
        info = await js.consumer_info(settings.stream, settings.consumer)
        # Everything sent well before the SIGTERM must become visible.
        due = {k for k, t in seen.published.items() if t <= sigterm_at - SIGTERM_MARGIN}
        if not due:
            due = {k for k, t in seen.published.items() if t <= sigterm_at - 0.2}
        await seen.wait_seen(due, 15.0)
        stop_polling.set()
        await poller
        latencies = [seen.latencies[k] for k in due if k in seen.latencies]
        missing = len(due) - len(latencies)
        result = Latency(
            rate=rate,
            sustained_rate=sustained,
            storage=settings.storage,
            published=len(seen.published),
            measured=len(latencies),
            missing=missing,
            p50=statistics.median(latencies) if latencies else float("nan"),
            p90=_percentile(latencies, 0.90),
            p99=_percentile(latencies, 0.99),
            max=max(latencies) if latencies else float("nan"),
            idle_rss_mib=idle.largest_mib,
            peak_rss_mib=peak.largest_mib,
            sigterm_exit_seconds=stop_seconds,
            exit_code=codes[0],
            ack_pending_after_exit=info.num_ack_pending or 0,
            redelivered=info.num_redelivered or 0,
        )
        if not result.stop_ok:
            # The bench's workdir goes at the end: keep what the ingester said while stopping.
            kept = keep_log(contender.logs[0], "sigterm")
            result = dataclasses.replace(result, sigterm_log=str(kept))
        return result
    finally:
        await contender.stop()
        seen.close()


async def measure_soak(bench: Bench, nc: NatsClient, sustained: float, seconds: float) -> Soak:
    rate = sustained / 2
    # Envelopes are generated in chunks as the soak goes, so the bench's memory stays flat too.
    settings, _, contender = await _start_ingester(bench, nc, "soak")
    stop = asyncio.Event()
    samples: list[tuple[float, float]] = []

    async def publish_for_the_soak() -> None:
        chunk = max(1000, int(rate * 10))
        while not stop.is_set():
            envelopes = generate(chunk, seed=len(samples) + 100)
            await publish_at_rate(nc, settings, rate, envelopes, stop, lambda _env, _at: None)

    publisher = asyncio.ensure_future(publish_for_the_soak())
    try:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < seconds:
            contender.check_alive()
            if publisher.done():
                publisher.result()
            samples.append((round(elapsed, 1), memory(contender.pids, "VmRSS").largest_mib))
            await asyncio.sleep(min(5.0, max(0.5, seconds / 60)))
        samples.append(
            (round(time.monotonic() - started, 1), memory(contender.pids, "VmRSS").largest_mib)
        )
    finally:
        stop.set()
        await publisher
        await contender.stop()
    # The first samples are the warm-up (imports done, buffers growing to their working size).
    warm = [s for s in samples if s[0] >= min(10.0, seconds / 10)] or samples
    return Soak(
        seconds=seconds,
        rate=rate,
        samples_mib=samples,
        start_mib=warm[0][1],
        end_mib=warm[-1][1],
        max_mib=max(s[1] for s in samples),
    )
