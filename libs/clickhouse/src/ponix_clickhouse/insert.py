"""Storing one sealed batch: INSERT attempts, holding through store failures, isolating rows
ClickHouse rejects for their content. :class:`~ponix_clickhouse.writer.BatchWriter` batches rows
and hands each sealed batch here (docs/architecture.md, "Failure classes").

* **Hold and retry in place.** An INSERT that fails for the store's sake is retried with the same
  rows and the same dedup token, with capped exponential backoff and jitter, until it succeeds
  or shutdown comes. Recovery is proved by the held INSERT succeeding. One warning when holding
  starts, one when the store is back.
* **Content errors isolated.** A batch ClickHouse rejects for a row's content is bisected: the
  halves that insert are stored, the rows that fail alone are returned. A rejection is believed
  only when another row of the batch was stored, or a row stored earlier still inserts (the
  canary), or (nothing stored yet) the table's columns are still the ones the rows are built for;
  otherwise the store is at fault (a column whose type changed rejects every row alike).
* **What "stored" means.** ``async_insert=0`` where the server knows the setting; inserts into a
  Distributed table wait for the shards (``insert_distributed_sync``,
  ``distributed_foreground_insert`` from 23.10); with ``insert_quorum``, for that many replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, Final, Protocol

from clickhouse_driver import errors as driver_errors

from ponix_clickhouse.client import make_client, parse_version
from ponix_clickhouse.errors import Fault, InsertError, insert_error
from ponix_clickhouse.layout import DEDUP_TOKEN_SINCE, TableLayout, read_table_layout
from ponix_clickhouse.sql import column_list, qualified_name
from ponix_config import ClickHouseSettings
from ponix_runner import Backoff
from ponix_telemetry import metrics

__all__ = (
    "Batch",
    "InsertClient",
    "Inserter",
    "Rejected",
    "ShuttingDownError",
    "dedup_token",
    "insert_settings",
)

log = logging.getLogger("ponix_clickhouse.writer")

Row = tuple[Any, ...]

ASYNC_INSERT_SINCE: Final = (21, 11)
"""``async_insert`` exists from 21.11; older servers reject the setting."""
FOREGROUND_INSERT_SINCE: Final = (23, 10)
"""``insert_distributed_sync`` is called ``distributed_foreground_insert`` from 23.10."""
HELD_AT_SHUTDOWN: Final = "held_at_shutdown"


class InsertClient(Protocol):
    """The part of ``clickhouse_driver.Client`` the writer uses."""

    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any: ...

    def disconnect(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row ClickHouse rejected for its own content: its index in the ``add`` call's rows."""

    index: int
    error: InsertError


def dedup_token(rows: Sequence[Row], id_index: int) -> str:
    """sha256 of the batch's sorted ids: the same set of rows gives the same token."""
    digest = hashlib.sha256()
    for envelope_id in sorted(str(row[id_index]) for row in rows):
        digest.update(envelope_id.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def insert_settings(version: tuple[int, ...], *, quorum: int = 0) -> dict[str, Any]:
    """The settings that pin down what a returned INSERT means on a server of ``version``."""
    pinned: dict[str, Any] = {}
    if version >= ASYNC_INSERT_SINCE:
        pinned["async_insert"] = 0
    if version >= FOREGROUND_INSERT_SINCE:
        pinned["distributed_foreground_insert"] = 1
    else:
        pinned["insert_distributed_sync"] = 1
    if quorum:
        pinned["insert_quorum"] = quorum
    return pinned


@dataclass(slots=True, eq=False)
class Batch:
    """A sealed batch: its rows, the ``add`` futures they came with, and since when it is
    held (monotonic; None when not held)."""

    rows: list[Row] = field(default_factory=list)
    groups: list[tuple[asyncio.Future[tuple[Rejected, ...]], int]] = field(default_factory=list)
    nbytes: int = 0
    held_since: float | None = None


class ShuttingDownError(Exception):
    """The writer is closing while this batch is not stored: give its rows back."""

    def __init__(self, error: InsertError) -> None:
        super().__init__(str(error))
        self.error = error


class Inserter:
    """Stores sealed batches: one thread and client per INSERT, at most ``max_concurrent``
    at a time. ``on_change`` is called when holding starts or ends (the writer's readiness)."""

    def __init__(
        self,
        settings: ClickHouseSettings,
        columns: Sequence[str],
        *,
        server_version: tuple[int, ...] | None,
        layout: TableLayout | None,
        max_concurrent: int,
        backoff: Backoff,
        shutdown_timeout: float,
        client_factory: Callable[[], InsertClient] | None,
        on_change: Callable[[], None],
        counters: metrics.WriterMetrics,
    ) -> None:
        self._columns = tuple(columns)
        self._query = (
            f"INSERT INTO {qualified_name(settings.database, settings.table)} "
            f"{column_list(self._columns)} VALUES"
        )
        self._id_index = self._columns.index("id")
        self._table = (settings.database, settings.table)
        self._layout = layout
        self._insert_timeout = settings.insert_timeout
        self._quorum = settings.insert_quorum
        self._backoff = backoff
        self._shutdown_timeout = shutdown_timeout
        self._new_client: Callable[[], InsertClient] = client_factory or (
            lambda: make_client(settings)
        )
        self._on_change = on_change
        self._metrics = counters
        self._settings_for: dict[str, Any] | None = None
        self._dedup = False
        if server_version is not None:
            self._pin(server_version)
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent + 2, thread_name_prefix="ponix-ch-insert"
        )
        self._slots = asyncio.Semaphore(max_concurrent)
        self._idle_clients: list[InsertClient] = []
        self._held: set[Batch] = set()
        self._failures = 0
        self._canary: Row | None = None
        self._wake = asyncio.Event()  # retry waits end early on shutdown
        self._attempts: set[asyncio.Timeout] = set()
        self._stop_at: float | None = None
        self._closing = False
        counters.held_seconds.set_function(self._held_seconds)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def shutdown_deadline_passed(self) -> bool:
        return self._stop_at is not None and self._stop_at <= _now()

    async def store(self, batch: Batch) -> dict[int, InsertError]:
        """Store ``batch``; the rows rejected for their content, by index in the batch.
        Raises :class:`ShuttingDownError` when shutdown came first."""
        try:
            async with self._slots:
                return await self._store(batch)
        finally:
            self._unhold(batch, stored=False)

    async def _store(self, batch: Batch) -> dict[int, InsertError]:
        """Store ``batch``; the rows rejected for their content, by index in the batch."""
        rows = batch.rows
        error = await self._until_stored_or_rejected(batch, rows)
        indices = list(range(len(rows)))
        while error is not None:
            bad: dict[int, InsertError] = {}
            stored = await self._bisect(batch, indices, error, bad)
            if stored or await self._rows_are_at_fault(batch):
                log.warning(
                    "clickhouse rejected rows for their content, dead-lettering them",
                    extra={"rows": len(bad), "batch_rows": len(rows), "error": error.detail},
                )
                for rejected in bad.values():
                    self._metrics.rows_rejected(rejected.reason).inc()
                return bad
            # Nothing of the batch went in and nothing says the table takes good rows: not
            # the rows' fault. Hold what the bisection could not store, as for any failure.
            indices = sorted(bad)
            await self._hold(
                batch,
                InsertError(
                    "rejects_every_row",
                    error.detail,
                    fault=Fault.STORE,
                    server_code=error.server_code,
                ),
            )
            error = await self._until_stored_or_rejected(batch, [rows[i] for i in indices])
        return {}

    async def _bisect(
        self, batch: Batch, indices: list[int], error: InsertError, bad: dict[int, InsertError]
    ) -> bool:
        """The rows at ``indices`` (of ``batch.rows``) failed together with ``error``, a
        content error: store what inserts, put the rest in ``bad``. True when any was stored."""
        if len(indices) == 1:
            bad[indices[0]] = error
            return False
        rows = batch.rows
        middle = len(indices) // 2
        left, right = indices[:middle], indices[middle:]
        stored = False
        left_error = await self._until_stored_or_rejected(batch, [rows[i] for i in left])
        right_error: InsertError | None
        if left_error is None:
            stored = True
            # All failed together and the left half did not: the right half is at fault, so
            # it is split without trying it whole.
            right_error = error
        else:
            stored = await self._bisect(batch, left, left_error, bad)
            right_error = await self._until_stored_or_rejected(batch, [rows[i] for i in right])
        if right_error is None:
            return True
        return await self._bisect(batch, right, right_error, bad) or stored

    async def _rows_are_at_fault(self, batch: Batch) -> bool:
        """No row of a rejected batch went in: are the rows at fault, or the table? A row stored
        earlier that still inserts (the canary) says the rows; so does, with no canary yet, a
        table whose columns are still the expected ones. Storing the canary again is harmless:
        same id, same content, and ReplacingMergeTree keeps one."""
        canary = self._canary
        if canary is not None:
            return await self._until_stored_or_rejected(batch, [canary], count=False) is None
        expected = self._layout
        if expected is None:
            return False
        client = self._idle_clients.pop() if self._idle_clients else self._new_client()
        database, table = self._table
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self._executor,
                lambda: read_table_layout(
                    client,
                    database,
                    table,
                    expected.columns,
                    server_version=expected.server_version,
                ),
            )
        except Exception as exc:  # noqa: BLE001 - a table we cannot read is the store's fault
            log.debug("reading the table's layout failed", extra={"error": str(exc)})
            _disconnect(client)
            return False
        self._idle_clients.append(client)
        return found.types == expected.types

    async def _until_stored_or_rejected(
        self, batch: Batch, rows: Sequence[Row], *, count: bool = True
    ) -> InsertError | None:
        """INSERT ``rows`` until it succeeds (None) or ClickHouse rejects their content (the
        error); a store failure holds ``batch`` and retries with the same rows and token."""
        token = dedup_token(rows, self._id_index) if self._dedup else None
        while True:
            try:
                elapsed = await self._attempt(rows, token)
            except ShuttingDownError:
                raise
            except Exception as exc:  # noqa: BLE001 - classified here
                error = insert_error(exc)
                if not error.store_fault:
                    return error
                await self._hold(batch, error)
                continue
            if count:
                self._on_success(batch, rows, elapsed)
            self._unhold(batch, stored=True)
            return None

    async def _attempt(self, rows: Sequence[Row], token: str | None) -> float:
        """One INSERT on a pooled client, bounded by ``insert_timeout`` (and by the shutdown
        budget once shutdown began). A client goes back to the pool after a success or a
        server's error; after anything else its connection state is unknown and it is dropped
        (once the thread is done with it)."""
        if self._stop_at is not None and self._stop_at <= _now():
            raise ShuttingDownError(self.shutdown_error())
        client = self._idle_clients.pop() if self._idle_clients else self._new_client()
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, self._insert_blocking, client, rows, token)
        budget = self._insert_timeout
        if self._stop_at is not None:
            budget = min(budget, self._stop_at - _now())
        timeout = asyncio.timeout(budget)
        self._attempts.add(timeout)
        try:
            async with timeout:
                elapsed = await asyncio.shield(work)
        except TimeoutError:
            work.add_done_callback(lambda _: _disconnect(client))
            if self._stop_at is not None:
                raise ShuttingDownError(self.shutdown_error()) from None
            raise InsertError(
                "timeout", f"no answer within {self._insert_timeout:g}s", fault=Fault.STORE
            ) from None
        except asyncio.CancelledError:
            work.add_done_callback(lambda _: _disconnect(client))
            raise
        except driver_errors.ServerException:
            self._idle_clients.append(client)
            raise
        except BaseException:
            _disconnect(client)
            raise
        finally:
            self._attempts.discard(timeout)
        self._idle_clients.append(client)
        return elapsed

    def _insert_blocking(
        self, client: InsertClient, rows: Sequence[Row], token: str | None
    ) -> float:
        if self._settings_for is None:
            answer = str(client.execute("SELECT version()")[0][0])
            try:
                self._pin(parse_version(answer))
            except ValueError:
                self._pin((0,))
            if self._dedup and token is None:
                token = dedup_token(rows, self._id_index)
        settings = self._settings_for or {}
        if token is not None:
            settings = {**settings, "insert_deduplication_token": token}
        started = perf_counter()
        client.execute(self._query, rows, types_check=False, settings=settings)
        return perf_counter() - started

    def _pin(self, version: tuple[int, ...]) -> None:
        self._dedup = version >= DEDUP_TOKEN_SINCE
        self._settings_for = insert_settings(version, quorum=self._quorum)

    def _on_success(self, batch: Batch, rows: Sequence[Row], elapsed: float) -> None:
        self._failures = 0
        self._canary = rows[-1]
        counters = self._metrics
        counters.batch_rows.observe(len(rows))
        counters.duration.observe(elapsed)
        counters.rows_inserted.inc(len(rows))
        # A part of a bisected batch: its share of the batch's bytes (rows carry no size).
        whole = len(batch.rows)
        counters.inserted_bytes.inc(
            batch.nbytes if len(rows) == whole else batch.nbytes * len(rows) // max(whole, 1)
        )
        counters.last_insert_at.set(datetime.now(UTC).timestamp())

    # -- holding --------------------------------------------------------------------------------

    async def _hold(self, batch: Batch, error: InsertError) -> None:
        """``batch`` failed for the store's sake: hold it, wait out the backoff, and return to
        retry. Raises :class:`ShuttingDownError` once shutdown began."""
        self._metrics.insert_failures(error.reason).inc()
        self._failures += 1
        delay = self._backoff.delay(self._failures)
        if self._closing:
            raise ShuttingDownError(self.shutdown_error(delay))
        if batch.held_since is None:
            batch.held_since = time.monotonic()
            if not self._held:
                self._metrics.holds.inc()
                log.warning(
                    "clickhouse failed an insert, holding the batch and retrying in place",
                    extra={
                        "reason": error.reason,
                        "error": error.detail,
                        "server_code": error.server_code,
                        "rows": len(batch.rows),
                        "retry_in": round(delay, 2),
                    },
                )
            self._held.add(batch)
            self._metrics.held_rows.inc(len(batch.rows))
            self._on_change()
        else:
            log.debug(
                "held insert failed again",
                extra={"reason": error.reason, "error": error.detail, "retry_in": round(delay, 2)},
            )
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()
        if self._closing:
            raise ShuttingDownError(self.shutdown_error(delay))

    def _unhold(self, batch: Batch, *, stored: bool) -> None:
        since = batch.held_since
        if since is None:
            return
        batch.held_since = None
        self._held.discard(batch)
        self._metrics.held_rows.dec(len(batch.rows))
        if stored and not self._held:
            log.warning(
                "clickhouse accepts inserts again",
                extra={"held_seconds": round(time.monotonic() - since, 2)},
            )
        self._on_change()

    def _held_seconds(self) -> float:
        if not self._held:
            return 0.0
        now = time.monotonic()
        return max(now - (batch.held_since or now) for batch in self._held)

    def shutdown_error(self, retry_after: float | None = None) -> InsertError:
        """What the ``add`` futures of rows given back at shutdown fail with."""
        return InsertError(
            HELD_AT_SHUTDOWN,
            "the writer shut down before ClickHouse stored these rows",
            fault=Fault.STORE,
            retry_after=retry_after or self._backoff.initial,
        )

    def shut_down(self) -> None:
        """Held batches are given back at once; what is inserting gets ``shutdown_timeout``."""
        if self._closing:
            return
        self._closing = True
        self._stop_at = _now() + self._shutdown_timeout
        self._wake.set()
        for timeout in self._attempts:
            when = timeout.when()
            if when is None or when > self._stop_at:
                timeout.reschedule(self._stop_at)

    def close(self) -> None:
        clients, self._idle_clients = self._idle_clients, []
        for client in clients:
            _disconnect(client)
        self._executor.shutdown(wait=False)


def _now() -> float:
    return asyncio.get_running_loop().time()


def _disconnect(client: InsertClient) -> None:
    with contextlib.suppress(Exception):
        client.disconnect()
