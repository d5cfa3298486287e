"""``BatchWriter``: rows in, batched native INSERTs out, one future per ``add``.

Contract (the sink side of "insert first, then ack"; docs/architecture.md, "Failure classes"):

* ``add(rows, nbytes)`` is cheap and never blocks the event loop. Its future resolves once the
  rows are stored, with the rows ClickHouse rejected for their own content (:class:`Rejected`,
  usually none). It fails (:class:`InsertError`, the store's fault) only when the writer shuts
  down with the rows not stored: the caller gives them back to the stream (nak).
* A batch is flushed when it reaches ``batch_max_rows`` or ``batch_max_bytes``, or when its
  first row has waited ``batch_max_latency`` (a loop timer: no polling task). One INSERT may
  combine several ``add`` calls.
* INSERTs run in worker threads, each with its own client, at most ``max_concurrent_inserts``
  at a time; the event loop only hands lists over (:mod:`ponix_clickhouse.insert`).
* **Hold and retry in place.** An INSERT that fails for the store's sake (unreachable, slow,
  read-only, too many parts, table missing, schema drift, an unknown code) is retried with the
  same rows and the same dedup token, with capped exponential backoff and jitter, until it
  succeeds or shutdown comes. Recovery is proved by the held INSERT succeeding. While a batch is
  held, ``ready()`` waits (the consumer stops fetching) and ``holding`` is true. One warning
  when holding starts, one when the store is back.
* **Content errors isolated.** When ClickHouse rejects a batch for a row's content, the batch is
  bisected: the halves that insert are stored, the rows that fail alone are reported as
  :class:`Rejected`. A rejection is believed only when another row of the batch was stored, or
  a row stored earlier still inserts (the canary), or (nothing stored yet) the table's columns
  are still the ones the writer was built for. Otherwise the store is at fault (a column whose
  type changed rejects every row alike) and the rows are held.
* Memory is bounded by rows and by bytes: rows buffered, held or inserting never exceed
  ``max_in_flight_rows`` or ``max_in_flight_bytes`` (but for one oversized ``add``). Beyond
  that, ``add``'s rows wait outside the buffer (the caller already holds them), and ``ready()``
  waits until there is room.
* **What "stored" means.** ``async_insert=0`` where the server knows the setting (the INSERT
  returns once the part is written); inserts into a Distributed table wait for the shards
  (``insert_distributed_sync``, ``distributed_foreground_insert`` from 23.10); with
  ``insert_quorum`` set, for that many replicas.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ponix_clickhouse.errors import InsertError
from ponix_clickhouse.insert import (
    Batch,
    InsertClient,
    Inserter,
    Rejected,
    Row,
    ShuttingDownError,
)
from ponix_clickhouse.layout import ENVELOPE_COLUMNS, TableLayout
from ponix_config import ClickHouseSettings
from ponix_runner import Backoff, ShutdownSignal
from ponix_telemetry import metrics

__all__ = ("BatchWriter",)

_NO_ROWS: Final[tuple[Rejected, ...]] = ()


@dataclass(slots=True)
class _Parked:
    rows: Sequence[Row]
    nbytes: int
    future: asyncio.Future[tuple[Rejected, ...]]


class BatchWriter:
    """Batches rows into native-protocol INSERTs into ``settings.database.settings.table``."""

    def __init__(
        self,
        settings: ClickHouseSettings,
        columns: Sequence[str] = ENVELOPE_COLUMNS,
        *,
        server_version: tuple[int, ...] | None = None,
        layout: TableLayout | None = None,
        max_concurrent_inserts: int = 2,
        backoff: Backoff | None = None,
        shutdown_timeout: float = 2.0,
        client_factory: Callable[[], InsertClient] | None = None,
    ) -> None:
        """``columns`` is the row layout; it must hold ``id`` (the dedup token is derived from
        it). ``server_version`` decides the INSERT settings (dedup tokens from 22.2, ...);
        ``None``: asked on the first insert. ``layout``: the table as the rows are built for
        it; when ClickHouse rejects every row of a batch and no row is known to be good, a
        table that still has this layout means the rows are at fault, any other the store
        (``None``: always the store). ``shutdown_timeout``: once shutdown began, how long an
        INSERT may still take before its rows are given back."""
        if max_concurrent_inserts < 1:
            raise ValueError("max_concurrent_inserts must be at least 1")
        self._max_rows = settings.batch_max_rows
        self._max_bytes = settings.batch_max_bytes
        self._latency = settings.batch_max_latency
        self._max_in_flight = settings.max_in_flight_rows
        self._max_in_flight_bytes = settings.max_in_flight_bytes
        self._metrics = metrics.WriterMetrics(
            metrics.table_label(settings.database, settings.table)
        )
        self._inserter = Inserter(
            settings,
            columns,
            server_version=server_version,
            layout=layout,
            max_concurrent=max_concurrent_inserts,
            backoff=backoff or Backoff(initial=0.5, maximum=settings.retry_max_delay, jitter=0.2),
            shutdown_timeout=shutdown_timeout,
            client_factory=client_factory,
            on_change=self._update_ready,
            counters=self._metrics,
        )
        self._buffer = Batch()
        self._timer: asyncio.TimerHandle | None = None
        self._parked: deque[_Parked] = deque()
        self._parked_rows = 0
        self._parked_bytes = 0
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = asyncio.Event()
        self._ready.set()
        self._closing = False
        self._closed_event = asyncio.Event()

    # -- state ------------------------------------------------------------------------------

    @property
    def in_flight_rows(self) -> int:
        """Rows buffered, held or being inserted."""
        return self._in_flight

    @property
    def in_flight_bytes(self) -> int:
        """Payload bytes of the rows buffered, held or being inserted."""
        return self._in_flight_bytes

    @property
    def holding(self) -> bool:
        """True while a batch is held because the store fails its INSERT."""
        return self._inserter.holding

    @property
    def accepting(self) -> bool:
        """Whether :meth:`ready` would return at once."""
        return self._ready.is_set() or self._closing

    async def ready(self) -> None:
        """Return when the writer is not holding and has room; wait otherwise (the consumer
        stops fetching)."""
        while not self._ready.is_set() and not self._closing:
            await self._ready.wait()

    # -- adding rows ---------------------------------------------------------------------------

    def add(self, rows: Sequence[Row], nbytes: int) -> asyncio.Future[tuple[Rejected, ...]]:
        """Queue ``rows`` (``nbytes``: their payload size) for insertion; see the module doc."""
        future: asyncio.Future[tuple[Rejected, ...]] = asyncio.get_running_loop().create_future()
        count = len(rows)
        if not count:
            future.set_result(_NO_ROWS)
        elif self._inserter.shutdown_deadline_passed():
            future.set_exception(self._inserter.shutdown_error())
        elif self._parked or not self._fits(count, nbytes):
            self._parked.append(_Parked(rows, nbytes, future))
            self._parked_rows += count
            self._parked_bytes += nbytes
            self._update_ready()
        else:
            self._accept(rows, nbytes, future)
        return future

    def _fits(self, count: int, nbytes: int) -> bool:
        return self._in_flight == 0 or (
            self._in_flight + count <= self._max_in_flight
            and self._in_flight_bytes + nbytes <= self._max_in_flight_bytes
        )

    def _accept(
        self, rows: Sequence[Row], nbytes: int, future: asyncio.Future[tuple[Rejected, ...]]
    ) -> None:
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
        self._in_flight_bytes += nbytes
        self._metrics.in_flight_rows.inc(count)
        self._metrics.in_flight_bytes.inc(nbytes)
        if self._closing or len(buffer.rows) >= self._max_rows or buffer.nbytes >= self._max_bytes:
            self._seal()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._latency, self._on_latency)
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
        self._buffer = Batch()
        task = asyncio.get_running_loop().create_task(self._insert(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, batch: Batch) -> None:
        self._in_flight -= len(batch.rows)
        self._in_flight_bytes -= batch.nbytes
        self._metrics.in_flight_rows.dec(len(batch.rows))
        self._metrics.in_flight_bytes.dec(batch.nbytes)
        while self._parked and self._fits(len(self._parked[0].rows), self._parked[0].nbytes):
            parked = self._parked.popleft()
            self._parked_rows -= len(parked.rows)
            self._parked_bytes -= parked.nbytes
            if parked.future.done():  # the caller gave up (cancelled) while waiting
                continue
            self._accept(parked.rows, parked.nbytes, parked.future)
        self._update_ready()

    def _update_ready(self) -> None:
        room = (
            self._in_flight + self._parked_rows < self._max_in_flight
            and self._in_flight_bytes + self._parked_bytes < self._max_in_flight_bytes
        )
        if room and not self._inserter.holding:
            self._ready.set()
        else:
            self._ready.clear()

    # -- inserting ------------------------------------------------------------------------------

    async def _insert(self, batch: Batch) -> None:
        try:
            bad = await self._inserter.store(batch)
        except ShuttingDownError as stop:
            _settle(batch.groups, error=stop.error)
        except asyncio.CancelledError:
            _settle(batch.groups, error=self._inserter.shutdown_error())
            raise
        else:
            _settle(batch.groups, bad=bad)
        finally:
            self._release(batch)

    # -- lifecycle ------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Send everything buffered (and waiting for room) and wait until every batch is
        settled: stored, or (after shutdown began) given back."""
        while True:
            self._seal()
            if not self._tasks:
                if self._buffer.rows or self._parked:
                    continue
                return
            await asyncio.wait(set(self._tasks))

    async def run(self, token: ShutdownSignal) -> None:
        """Host the writer as a runner process: when ``token`` is set, stop holding, give
        ``shutdown_timeout`` to what is inserting, flush, and return.

        Latency flushes run on loop timers whether or not this is hosted.
        """
        await token.wait()
        self.shut_down()
        await self.flush()

    def shut_down(self) -> None:
        """Shutdown began: held batches are given back at once (their ``add`` futures fail,
        the store's fault), and what is inserting gets ``shutdown_timeout`` before its rows
        are given back too. New rows are inserted at once, within the same budget."""
        if self._closing:
            return
        self._closing = True
        self._inserter.shut_down()
        self._ready.set()  # nobody should wait for a writer that is going away
        self._seal()

    async def close(self) -> None:
        """Shut down (as :meth:`run` does when its token is set), then disconnect.
        Idempotent."""
        if self._closed_event.is_set():
            return
        self.shut_down()
        try:
            await self.flush()
        finally:
            self._inserter.close()
            self._closed_event.set()


def _settle(
    groups: list[tuple[asyncio.Future[tuple[Rejected, ...]], int]],
    *,
    bad: dict[int, InsertError] | None = None,
    error: InsertError | None = None,
) -> None:
    offset = 0
    for future, count in groups:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            elif not bad:
                future.set_result(_NO_ROWS)
            else:
                future.set_result(
                    tuple(
                        Rejected(index - offset, bad[index])
                        for index in range(offset, offset + count)
                        if index in bad
                    )
                )
        offset += count
