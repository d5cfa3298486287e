"""``BatchWriter``: rows in, batched native INSERTs out, one future per ``add``.

Contract (the sink side of "insert first, then ack"):

* ``add(rows, nbytes)`` is cheap and never blocks the event loop. It returns a future that
  resolves once an INSERT holding those rows has returned, or fails with :class:`InsertError`
  (``transient``: nak with ``retry_after``; permanent: dead-letter). One INSERT may combine the
  rows of several ``add`` calls; one call's rows always travel in one INSERT.
* A batch is flushed when it reaches ``batch_max_rows`` or ``batch_max_bytes``, or when its
  first row has waited ``batch_max_latency`` (a loop timer: no polling task).
* INSERTs run in worker threads, each with its own client, at most ``max_concurrent_inserts``
  at a time; the event loop only hands lists over.
* Memory is bounded: rows buffered or being inserted never exceed ``max_in_flight_rows`` (or
  one oversized ``add``). Beyond that, ``add``'s rows wait outside the buffer (the caller already
  holds them) and its future resolves later; ``ready()`` waits until there is room again.
* After a transient failure the writer backs off: batches fail fast with ``retry_after``,
  ``ready()`` waits, and a probe (``SELECT 1``, exponential backoff) decides when to try again.
* On a permanent failure of a batch that combined several ``add`` calls, each call's rows are
  retried alone, so one bad row fails only the call that brought it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Protocol

from ponix_clickhouse.client import make_client, parse_version
from ponix_clickhouse.errors import InsertError, insert_error
from ponix_clickhouse.layout import DEDUP_TOKEN_SINCE, ENVELOPE_COLUMNS
from ponix_clickhouse.sql import column_list, qualified_name
from ponix_config import ClickHouseSettings
from ponix_telemetry import metrics

log = logging.getLogger(__name__)

Row = tuple[Any, ...]


class InsertClient(Protocol):
    """The part of ``clickhouse_driver.Client`` the writer uses."""

    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any: ...

    def disconnect(self) -> None: ...


class ShutdownToken(Protocol):
    """What :meth:`BatchWriter.run` waits on: ``ponix_runner.ShutdownToken`` or an
    ``asyncio.Event`` (only ``wait()`` is used, so ``is_set`` may be a method or a property)."""

    async def wait(self) -> object: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff after transient failures: ``initial * multiplier**(n-1)``, capped."""

    initial: float = 0.5
    multiplier: float = 2.0
    maximum: float = 30.0
    jitter: float = 0.2

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier ** max(0, failures - 1))
        return base * (1.0 + random.uniform(-self.jitter, self.jitter))  # noqa: S311


def dedup_token(rows: Sequence[Row], id_index: int) -> str:
    """sha256 of the batch's sorted ids: the same set of rows gives the same token."""
    digest = hashlib.sha256()
    for envelope_id in sorted(str(row[id_index]) for row in rows):
        digest.update(envelope_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(slots=True)
class _Batch:
    rows: list[Row] = field(default_factory=list)
    groups: list[tuple[asyncio.Future[None], int]] = field(default_factory=list)
    nbytes: int = 0


@dataclass(slots=True)
class _Parked:
    rows: Sequence[Row]
    nbytes: int
    future: asyncio.Future[None]


class BatchWriter:
    """Batches rows into native-protocol INSERTs into ``settings.database.settings.table``."""

    def __init__(
        self,
        settings: ClickHouseSettings,
        columns: Sequence[str] = ENVELOPE_COLUMNS,
        *,
        id_column: str | None = "id",
        max_concurrent_inserts: int = 2,
        dedup_tokens: bool | None = None,
        backoff: Backoff | None = None,
        client_factory: Callable[[], InsertClient] | None = None,
    ) -> None:
        """``columns`` is the row layout. ``id_column`` names the column the dedup token is
        derived from (None: no tokens). ``dedup_tokens=None`` sends tokens only when the
        server supports them (>= 22.2), found out on the first insert."""
        if max_concurrent_inserts < 1:
            raise ValueError("max_concurrent_inserts must be at least 1")
        self._columns = tuple(columns)
        self._query = (
            f"INSERT INTO {qualified_name(settings.database, settings.table)} "
            f"{column_list(self._columns)} VALUES"
        )
        self._id_index = self._columns.index(id_column) if id_column is not None else None
        self._dedup = dedup_tokens if self._id_index is not None else False
        self._max_rows = settings.batch_max_rows
        self._max_bytes = settings.batch_max_bytes
        self._latency = settings.batch_max_latency
        self._max_in_flight = settings.max_in_flight_rows
        self._insert_timeout = settings.insert_timeout
        self._backoff = backoff or Backoff()
        self._new_client: Callable[[], InsertClient] = client_factory or (
            lambda: make_client(settings)
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent_inserts + 1, thread_name_prefix="ponix-ch-insert"
        )
        self._slots = asyncio.Semaphore(max_concurrent_inserts)
        self._idle_clients: list[InsertClient] = []
        self._probe_client: InsertClient | None = None

        self._buffer = _Batch()
        self._timer: asyncio.TimerHandle | None = None
        self._parked: deque[_Parked] = deque()
        self._parked_rows = 0
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

        self._healthy = asyncio.Event()
        self._healthy.set()
        self._ready = asyncio.Event()
        self._ready.set()
        self._failures = 0
        self._resume_at = 0.0
        self._probe_task: asyncio.Task[None] | None = None
        self._probe_work: asyncio.Future[None] | None = None
        self._closing = False
        self._closed = False
        self._closed_event = asyncio.Event()

    # -- state ------------------------------------------------------------------------------

    @property
    def in_flight_rows(self) -> int:
        """Rows buffered or being inserted (never above ``max_in_flight_rows`` but for one
        oversized ``add``)."""
        return self._in_flight

    @property
    def waiting_rows(self) -> int:
        """Rows of ``add`` calls waiting for room."""
        return self._parked_rows

    @property
    def healthy(self) -> bool:
        """False while backing off after a transient failure."""
        return self._healthy.is_set()

    @property
    def accepting(self) -> bool:
        """True when :meth:`ready` would return at once (healthy, with room)."""
        return self._ready.is_set() or self._closing

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    async def ready(self) -> None:
        """Return when the writer is healthy and has room; wait otherwise (pause fetching)."""
        while not self._ready.is_set() and not self._closing:
            await self._ready.wait()

    # -- adding rows ---------------------------------------------------------------------------

    def add(self, rows: Sequence[Row], nbytes: int) -> asyncio.Future[None]:
        """Queue ``rows`` (``nbytes``: their payload size) for insertion; see the module doc."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        count = len(rows)
        if not count:
            future.set_result(None)
        elif self._closing:
            future.set_exception(
                InsertError("closed", "the writer is closed", transient=True, retry_after=1.0)
            )
        elif self._parked or not self._fits(count):
            self._parked.append(_Parked(rows, nbytes, future))
            self._parked_rows += count
            self._update_ready()
        else:
            self._accept(rows, nbytes, future)
        return future

    def _fits(self, count: int) -> bool:
        return self._in_flight == 0 or self._in_flight + count <= self._max_in_flight

    def _accept(self, rows: Sequence[Row], nbytes: int, future: asyncio.Future[None]) -> None:
        count = len(rows)
        buffer = self._buffer
        if buffer.rows and (
            len(buffer.rows) + count > self._max_rows or buffer.nbytes + nbytes > self._max_bytes
        ):
            self._seal()
            buffer = self._buffer
        buffer.rows.extend(rows)
        buffer.groups.append((future, count))
        buffer.nbytes += nbytes
        self._in_flight += count
        metrics.IN_FLIGHT_ROWS.inc(count)
        if len(buffer.rows) >= self._max_rows or buffer.nbytes >= self._max_bytes:
            self._seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._latency, self._on_latency)
        if self._in_flight >= self._max_in_flight:
            self._update_ready()

    def _on_latency(self) -> None:
        self._timer = None
        self._seal()

    def _seal(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = self._buffer
        if not batch.rows:
            return
        self._buffer = _Batch()
        task = asyncio.get_running_loop().create_task(self._insert(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, count: int) -> None:
        self._in_flight -= count
        metrics.IN_FLIGHT_ROWS.dec(count)
        while self._parked and self._fits(len(self._parked[0].rows)):
            parked = self._parked.popleft()
            self._parked_rows -= len(parked.rows)
            if parked.future.done():  # the caller gave up (cancelled) while waiting
                continue
            if self._closing and self._closed:
                parked.future.set_exception(
                    InsertError("closed", "the writer is closed", transient=True)
                )
                continue
            self._accept(parked.rows, parked.nbytes, parked.future)
        self._update_ready()

    def _update_ready(self) -> None:
        room = self._in_flight + self._parked_rows < self._max_in_flight
        if room and self._healthy.is_set():
            self._ready.set()
        else:
            self._ready.clear()

    # -- inserting ------------------------------------------------------------------------------

    async def _insert(self, batch: _Batch) -> None:
        try:
            async with self._slots:
                if not self._healthy.is_set():
                    self._fail(batch.groups, self._backing_off())
                    return
                client = self._idle_clients.pop() if self._idle_clients else self._new_client()
                # _attempt handles every failure itself; only cancellation escapes, and then a
                # worker thread may still be using this client: it never goes back to the pool.
                await self._attempt(client, batch.rows, batch.groups)
                self._idle_clients.append(client)
        except asyncio.CancelledError:
            self._fail(
                batch.groups, InsertError("cancelled", "writer task cancelled", transient=True)
            )
            raise
        finally:
            self._release(len(batch.rows))

    async def _attempt(
        self,
        client: InsertClient,
        rows: list[Row],
        groups: list[tuple[asyncio.Future[None], int]],
    ) -> None:
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, self._insert_blocking, client, rows)
        try:
            async with asyncio.timeout(self._insert_timeout):
                elapsed = await asyncio.shield(work)
        except TimeoutError:
            error = self._on_transient(
                InsertError(
                    "timeout", f"no answer within {self._insert_timeout:g}s", transient=True
                )
            )
            self._fail(groups, error)
            # The thread still owns the client: wait for it (socket timeouts bound this), then
            # drop the connection, whose state is unknown.
            with contextlib.suppress(Exception):
                await work
            client.disconnect()
            return
        except Exception as exc:  # noqa: BLE001 - classified, then handed to every caller
            error = insert_error(exc)
            if not error.transient and len(groups) > 1:
                offset = 0
                for future, count in groups:
                    await self._attempt(client, rows[offset : offset + count], [(future, count)])
                    offset += count
                return
            if error.transient:
                error = self._on_transient(error)
            self._fail(groups, error)
            return
        self._on_success(len(rows), elapsed)
        for future, _ in groups:
            if not future.done():
                future.set_result(None)

    def _insert_blocking(self, client: InsertClient, rows: list[Row]) -> float:
        settings: dict[str, Any] | None = None
        if self._dedup is None:
            answer = str(client.execute("SELECT version()")[0][0])
            try:
                self._dedup = parse_version(answer) >= DEDUP_TOKEN_SINCE
            except ValueError:
                self._dedup = False
        if self._dedup and self._id_index is not None:
            settings = {"insert_deduplication_token": dedup_token(rows, self._id_index)}
        started = perf_counter()
        client.execute(self._query, rows, types_check=False, settings=settings)
        return perf_counter() - started

    def _fail(self, groups: list[tuple[asyncio.Future[None], int]], error: InsertError) -> None:
        metrics.INSERT_FAILURES.labels(code=error.reason).inc()
        for future, _ in groups:
            if not future.done():
                future.set_exception(error.with_retry_after(error.retry_after))

    def _on_success(self, count: int, elapsed: float) -> None:
        self._failures = 0
        metrics.BATCH_ROWS.observe(count)
        metrics.INSERT_SECONDS.observe(elapsed)
        metrics.ROWS_INSERTED.inc(count)
        metrics.LAST_INSERT_AT.set(datetime.now(UTC).timestamp())

    # -- backing off ----------------------------------------------------------------------------

    def _on_transient(self, error: InsertError) -> InsertError:
        loop = asyncio.get_running_loop()
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        self._resume_at = max(self._resume_at, loop.time() + delay)
        if self._healthy.is_set():
            # One line per outage, not per batch: the probe says when it is over.
            log.warning(
                "clickhouse insert failed, backing off",
                extra={"reason": error.reason, "error": error.detail, "retry_in": round(delay, 2)},
            )
        self._healthy.clear()
        self._update_ready()
        if (self._probe_task is None or self._probe_task.done()) and not self._closed:
            self._probe_task = loop.create_task(self._probe())
        return error.with_retry_after(max(delay, self._resume_at - loop.time()))

    def _backing_off(self) -> InsertError:
        remaining = max(0.0, self._resume_at - asyncio.get_running_loop().time())
        return InsertError(
            "backing_off",
            "ClickHouse failed recently; not trying again yet",
            transient=True,
            retry_after=max(remaining, self._backoff.initial),
        )

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            wait = self._resume_at - loop.time()
            if wait > 0:
                # The backoff itself: the probe is the only thing waiting, close() cancels it.
                await asyncio.sleep(wait)
            if self._probe_client is None:
                self._probe_client = self._new_client()
            self._probe_work = loop.run_in_executor(
                self._executor, self._ping_blocking, self._probe_client
            )
            try:
                # Shielded: a cancelled probe leaves the ping running; close() waits for it.
                await asyncio.shield(self._probe_work)
            except Exception:  # noqa: BLE001 - any failure means "not yet"
                self._failures += 1
                self._resume_at = loop.time() + self._backoff.delay(self._failures)
                continue
            log.info("clickhouse reachable again, resuming inserts")
            self._healthy.set()
            self._update_ready()
            return

    @staticmethod
    def _ping_blocking(client: InsertClient) -> None:
        client.execute("SELECT 1")

    # -- lifecycle ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything buffered (and waiting for room) and wait for every INSERT to end.

        Never raises for failed INSERTs: their callers' futures carry the errors.
        """
        while True:
            self._seal()
            if not self._tasks:
                if self._buffer.rows or self._parked:
                    continue
                return
            await asyncio.wait(set(self._tasks))

    async def run(self, token: ShutdownToken) -> None:
        """Host the writer as a runner process: when ``token`` is set, flush and return.

        Latency flushes run on loop timers whether or not this is hosted.
        """
        await token.wait()
        await self.flush()

    async def close(self) -> None:
        """Flush, stop probing, disconnect. Idempotent; ``add`` fails (transient) afterwards."""
        if self._closing:
            await self._closed_event.wait()
            return
        self._closing = True
        self._ready.set()  # nobody should wait for a writer that is going away
        try:
            await self.flush()
        finally:
            self._closed = True
            await self._shutdown()
            self._closed_event.set()

    async def _shutdown(self) -> None:
        if self._probe_task is not None:
            self._probe_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
        clients = [*self._idle_clients]
        if self._probe_work is not None and not self._probe_work.done():
            # A ping against a dead host can take connect_timeout; don't hold shutdown for it.
            await asyncio.wait({self._probe_work}, timeout=1.0)
        work = self._probe_work
        if work is not None and work.done() and not work.cancelled():
            work.exception()  # retrieved: a failed last ping is no news
        if self._probe_client is not None and (self._probe_work is None or self._probe_work.done()):
            clients.append(self._probe_client)
        self._idle_clients.clear()
        self._probe_client = None
        for client in clients:
            with contextlib.suppress(Exception):
                client.disconnect()
        self._executor.shutdown(wait=False)
