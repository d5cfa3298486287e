"""What the fault scenarios add to ``tests/support/pipeline.py``: fast timings for a test's
pipeline, the oracle's verdict from a ``PipelineClient``, publishing while a fault goes on, RSS
and ``/readyz`` of a service.

Everything else (names, child services, ledgers, drain waits) is ``tests.support.pipeline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field

from nats.js.api import ConsumerInfo

from ponix_producer import SyntheticEnvelopes
from tests.faults.figures import rss_mb
from tests.faults.oracle import Verdict, dead_letter_ids, judge
from tests.support.pipeline import Ledger, Pipeline, PipelineClient, ServiceProcess

# Test timings: seconds, not the production minutes, so a short scenario fits in seconds.
FAST: dict[str, object] = {
    "NATS_FETCH_EXPIRES": 0.5,
    "NATS_ACK_WAIT": 5,
    "NATS_NAK_DELAY_INITIAL": 0.5,
    "NATS_NAK_DELAY_MAX": 2,
    "NATS_MAX_DELIVER": 50,
    "NATS_CONNECT_TIMEOUT": 2,
    "CLICKHOUSE_CONNECT_TIMEOUT": 1,
    "CLICKHOUSE_SEND_RECEIVE_TIMEOUT": 10,
    "CLICKHOUSE_INSERT_TIMEOUT": 10,
    "CLICKHOUSE_BATCH_MAX_LATENCY": 0.05,
    "INGESTER_STARTUP_DEADLINE": 60,
    # Service images compile bytecode (UV_COMPILE_BYTECODE=1); a sandbox that exports
    # PYTHONDONTWRITEBYTECODE=1 would make every child compile its imports again (~1 s each).
    "PYTHONDONTWRITEBYTECODE": "",
}


# The scenarios run the ingester as it ships (INGESTER_WORKERS at its default) unless this says
# otherwise, e.g. PONIX_FAULTS_WORKERS=0 for the single-process mode.
WORKERS_ENV = "PONIX_FAULTS_WORKERS"


def fast_pipeline(
    *, nats_url: str, clickhouse_url: str, unique: str, database: str, **env: object
) -> Pipeline:
    """``Pipeline.isolated`` with :data:`FAST` timings, then ``env``."""
    workers = os.environ.get(WORKERS_ENV, "").strip()
    mode: dict[str, object] = {"INGESTER_WORKERS": workers} if workers else {}
    return Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=database,
        **{**FAST, **mode, **env},
    )


# -- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The oracle's verdict after a drain, and the consumer as the drain left it."""

    verdict: Verdict
    info: ConsumerInfo
    drain_seconds: float

    @property
    def redeliveries(self) -> int:
        """Deliveries beyond the first of each message (naks, ack_wait expiries)."""
        delivered = self.info.delivered
        if delivered is None:
            return 0
        return int((delivered.consumer_seq or 0) - (delivered.stream_seq or 0))


@dataclass
class Book:
    """The publisher's ledger as the oracle reads it: PubAck'd valid ids, PubAck'd poison ids,
    and ids never confirmed (they may or may not be in the stream)."""

    valid: list[str] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    unconfirmed: set[str] = field(default_factory=set)

    def add(self, ledger: Ledger, *, poison: bool = False) -> None:
        ids = [p.msg_id for p in ledger.published if p.msg_id is not None]
        (self.poison if poison else self.valid).extend(ids)
        self.unconfirmed.update(ledger.failed)
        self.unconfirmed.difference_update(ids)


async def drain_and_judge(client: PipelineClient, book: Book, *, within: float = 60.0) -> Outcome:
    """Wait until nothing is pending or awaiting an ack, then read the table (FINAL) and the
    DLQ and ask the oracle. (A term goes out after its DLQ copy's PubAck, so a drained
    consumer's dead letters are all in the DLQ stream.)"""
    started = time.monotonic()
    info = await client.wait_until_drained(within=within)
    table = client.pipeline.table
    rows = await client.query(f"SELECT id, count() FROM {table} FINAL GROUP BY id")
    per_id = {str(i): int(n) for i, n in rows if str(i) not in book.unconfirmed}
    letters = await dead_letter_ids(client.js, client.settings)
    verdict = judge(set(book.valid), per_id, poison=set(book.poison), dead_letters=letters)
    return Outcome(verdict, info, time.monotonic() - started)


# -- publishing while a fault goes on ---------------------------------------------------------


class Background:
    """Publishes synthetic envelopes at ``rate`` until stopped, in chunks of ``chunk``; each
    publish is resent under its id for up to ``ack_timeout`` seconds (a NATS restart)."""

    def __init__(
        self,
        client: PipelineClient,
        book: Book,
        *,
        rate: float,
        chunk: int = 200,
        ack_timeout: float = 30.0,
        seed: int = 0,
    ) -> None:
        self._client = client
        self._book = book
        self._rate = rate
        self._chunk = chunk
        self._ack_timeout = ack_timeout
        self._fleet = SyntheticEnvelopes(seed=seed)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def __enter__(self) -> Background:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            chunk = [self._fleet.next() for _ in range(self._chunk)]
            ledger = await self._client.publish_envelopes(
                chunk,
                concurrency=min(64, self._chunk),
                ack_timeout=self._ack_timeout,
            )
            self._book.add(ledger)
            self.published += len(chunk)
            ahead = started + self.published / self._rate - time.monotonic()
            if ahead > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), ahead)


# -- observing a service ----------------------------------------------------------------------


def service_rss(service: ServiceProcess) -> float | None:
    """VmRSS of the service and its children, MB (None once it has exited)."""
    return rss_mb(service.pid) if service.running else None


async def readyz(service: ServiceProcess) -> int | None:
    """The HTTP status of the service's ``/readyz``; None while nothing listens."""

    def get() -> int:
        url = f"http://127.0.0.1:{service.http_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    try:
        return await asyncio.to_thread(get)
    except OSError:
        return None


def ids_of(ledger: Ledger) -> list[str]:
    return [p.msg_id for p in ledger.published if p.msg_id is not None]


def without(ids: Iterable[str], drop: Iterable[str]) -> list[str]:
    dropped = set(drop)
    return [i for i in ids if i not in dropped]
