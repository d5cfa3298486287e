"""What the fault scenarios add to ``tests.support``: a test's pipeline at the shipped defaults,
the oracle's verdict from a ``PipelineClient``, publishing while a fault goes on, RSS and
``/readyz`` of a service.

Everything else (names, child services, ledgers, drain waits) is ``tests.support``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from nats.js.api import ConsumerInfo

from ponix_clickhouse import make_client
from ponix_producer import OutgoingEnvelope, SyntheticEnvelopes
from tests.faults.figures import rss_mb
from tests.faults.oracle import (
    Content,
    Verdict,
    dead_letter_ids,
    envelope_content,
    judge,
    row_content,
)
from tests.support.client import Ledger, PipelineClient
from tests.support.environment import Pipeline
from tests.support.services import ServiceProcess

# Not a product setting: service images compile bytecode (UV_COMPILE_BYTECODE=1); a sandbox that
# exports PYTHONDONTWRITEBYTECODE=1 would make every child compile its imports again (~1 s each).
CHILD_ENV: Final[dict[str, object]] = {"PYTHONDONTWRITEBYTECODE": ""}

# Variables that name the test's own resources or shape its logs, not how Ponix behaves: they
# are left out of a scenario's recorded settings.
_NAMING: Final = frozenset(
    {
        "NATS_URL",
        "NATS_STREAM",
        "NATS_SUBJECT_PREFIX",
        "NATS_CONSUMER",
        "NATS_DLQ_STREAM",
        "NATS_DLQ_SUBJECT",
        "NATS_MAX_AGE",
        "NATS_DLQ_MAX_AGE",
        "CLICKHOUSE_URL",
        "CLICKHOUSE_DATABASE",
        "INGESTER_STARTUP_DEADLINE",
        "PRODUCER_STARTUP_DEADLINE",
        "LOG_FORMAT",
        "LOG_LEVEL",
        *CHILD_ENV,
    }
)

# Variables whose value is a credential: recorded as set, never by value.
_SECRET_WORDS: Final = ("PASSWORD", "TOKEN", "SECRET", "SEED", "CREDS")


def default_pipeline(
    *, nats_url: str, clickhouse_url: str, unique: str, database: str, **env: object
) -> Pipeline:
    """``Pipeline.isolated`` at the shipped defaults; ``env`` is what the scenario is about."""
    return Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=database,
        **{**CHILD_ENV, **env},
    )


def overrides(pipeline: Pipeline) -> dict[str, str]:
    """The settings a scenario changed from the shipped defaults, as the figures record them:
    a credential as ``<set>``, a file by its name."""
    return {
        name: _shown(name, value)
        for name, value in sorted(pipeline.env.items())
        if name not in _NAMING
    }


def _shown(name: str, value: str) -> str:
    if any(word in name for word in _SECRET_WORDS):
        return "<set>"
    if name.endswith("_FILE"):
        return Path(value).name
    return value


# -- the verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """The oracle's verdict after a drain, the consumer as the drain left it, and what the
    consumer's deliveries were told (seen on ``$JS.ACK``)."""

    verdict: Verdict
    info: ConsumerInfo
    drain_seconds: float
    max_deliveries: int = 0
    settled: dict[str, int] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def redeliveries(self) -> int:
        """Deliveries beyond the first of each message (naks, ack_wait expiries)."""
        delivered = self.info.delivered
        if delivered is None:
            return 0
        return int((delivered.consumer_seq or 0) - (delivered.stream_seq or 0))

    @property
    def naks(self) -> int:
        return self.settled.get("nak", 0)


@dataclass
class Book:
    """The publisher's ledger as the oracle reads it: PubAck'd valid ids with the digests of
    their expected rows, PubAck'd poison ids, and ids never confirmed (they may or may not be
    in the stream)."""

    valid: list[str] = field(default_factory=list)
    poison: list[str] = field(default_factory=list)
    unconfirmed: set[str] = field(default_factory=set)
    expected: dict[str, Content] = field(default_factory=dict)

    def add(self, ledger: Ledger, *, poison: bool = False) -> None:
        ids = [p.msg_id for p in ledger.published if p.msg_id is not None]
        (self.poison if poison else self.valid).extend(ids)
        if not poison:
            for published in ledger.published:
                if published.msg_id is not None:
                    self.expected[published.msg_id] = envelope_content(published.payload)[1]
        self.unconfirmed.update(ledger.failed)
        self.unconfirmed.difference_update(ids)


async def read_table(client: PipelineClient) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The exact read (FINAL) a user gets: rows per id, and each row's content digest
    (:func:`oracle.row_content`). Streamed, so big envelopes never sit in memory at once."""
    milliseconds = (await client.column_type("occurred_at")).startswith("DateTime64")
    sql = (
        "SELECT id, organization_id, end_device_id, occurred_at, processed_at, data "
        f"FROM {client.pipeline.table} FINAL"
    )

    def run() -> tuple[dict[str, int], dict[str, list[int]]]:
        per_id: dict[str, int] = {}
        contents: dict[str, list[int]] = {}
        ch = make_client(client.pipeline.clickhouse, database="")
        try:
            for row in ch.execute_iter(sql, settings={"max_block_size": 256}):
                envelope_id, digest = row_content(tuple(row), milliseconds=milliseconds)
                per_id[envelope_id] = per_id.get(envelope_id, 0) + 1
                contents.setdefault(envelope_id, []).append(digest)
        finally:
            ch.disconnect()
        return per_id, contents

    return await asyncio.to_thread(run)


async def drain_and_judge(client: PipelineClient, book: Book, *, within: float = 60.0) -> Outcome:
    """Wait until nothing is pending or awaiting an ack, then read the table (FINAL) and the
    DLQ and ask the oracle. (A term goes out after its DLQ copy's PubAck, so a drained
    consumer's dead letters are all in the DLQ stream.)"""
    started = time.monotonic()
    info = await client.wait_until_drained(within=within)
    per_id, contents = await read_table(client)
    for envelope_id in book.unconfirmed:
        per_id.pop(envelope_id, None)
    letters = await dead_letter_ids(client.js, client.settings)
    unit = 1 if (await client.column_type("occurred_at")).startswith("DateTime64") else 0
    expected = {envelope_id: digests[unit] for envelope_id, digests in book.expected.items()}
    verdict = judge(
        set(book.valid),
        per_id,
        poison=set(book.poison),
        dead_letters=letters,
        expected=expected,
        contents=contents,
    )
    settlements = client.settlements
    return Outcome(
        verdict,
        info,
        time.monotonic() - started,
        max_deliveries=settlements.max_deliveries,
        settled=dict(settlements.counts),
        settings=overrides(client.pipeline),
    )


# -- publishing while a fault goes on ---------------------------------------------------------


class Background:
    """Publishes envelopes at ``rate`` until stopped, in chunks of ``chunk``; each publish is
    resent under its id for up to ``ack_timeout`` seconds (a NATS restart). ``make`` builds each
    envelope (default: synthetic ones from ``seed``)."""

    def __init__(
        self,
        client: PipelineClient,
        book: Book,
        *,
        rate: float,
        chunk: int = 200,
        ack_timeout: float = 30.0,
        seed: int = 0,
        make: Callable[[], OutgoingEnvelope] | None = None,
    ) -> None:
        self._client = client
        self._book = book
        self._rate = rate
        self._chunk = chunk
        self._ack_timeout = ack_timeout
        self._make = make or SyntheticEnvelopes(seed=seed).next
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
            chunk = [self._make() for _ in range(self._chunk)]
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


class RssWatch:
    """Samples a service's RSS every ``every`` seconds while the block runs; ``peak()`` is the
    largest sample since the last ``mark()`` (or the start)."""

    def __init__(self, service: ServiceProcess, *, every: float = 0.5) -> None:
        self._service = service
        self._every = every
        self._samples: list[float] = []
        self._mark = 0
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> RssWatch:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()

    def mark(self) -> None:
        self._mark = len(self._samples)

    def peak(self) -> float | None:
        return max(self._samples[self._mark :], default=None)

    @property
    def overall(self) -> float | None:
        return max(self._samples, default=None)

    async def _run(self) -> None:
        while (rss := service_rss(self._service)) is not None:
            self._samples.append(rss)
            # A sampling period, not a wait for a state.
            await asyncio.sleep(self._every)


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
