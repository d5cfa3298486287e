"""BatchWriter logic against an in-memory stand-in for clickhouse-driver's Client.

The real-server behaviour (rows selectable, duplicates collapsing, refusals) is in
tests/integration/clickhouse; here every rule is checked deterministically.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError, ServerException

from ponix_clickhouse import (
    BatchWriter,
    Fault,
    InsertError,
    Rejected,
    TableLayout,
    dedup_token,
    envelope_layout,
    insert_settings,
)
from ponix_config import ClickHouseSettings
from ponix_runner import Backoff
from tests.support.pipeline import eventually
from tests.support.token import Token

FAST_BACKOFF = Backoff(initial=0.02, maximum=0.05)
LAYOUT = envelope_layout((18, 16))
BAD = "not a timestamp"  # a row holding this is rejected for its content (code 27)


@dataclass
class FakeServer:
    """What every FakeClient talks to; its knobs are set by the test thread."""

    version: str = "18.16.1"
    inserts: list[tuple[list[tuple[Any, ...]], dict[str, Any] | None]] = field(default_factory=list)
    attempts: list[tuple[int, str | None]] = field(default_factory=list)  # (rows, token)
    fail_with: BaseException | None = None
    rejects_everything: bool = False  # a column changed type: every row fails to parse
    types: tuple[str, ...] = LAYOUT.types
    gate: threading.Event = field(default_factory=threading.Event)
    concurrent: int = 0
    max_concurrent: int = 0
    disconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.gate.set()


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        self.server = server

    def execute(self, query: str, params: Any = None, **kwargs: Any) -> Any:
        server = self.server
        if query == "SELECT version()":
            return [(server.version,)]
        if query.startswith("SELECT name, type FROM system.columns"):
            return list(zip(LAYOUT.columns, server.types, strict=True))
        assert query.startswith("INSERT INTO `ponix`.`processed_envelopes` (`id`, ")
        assert kwargs["types_check"] is False
        rows = list(params)
        query_settings = kwargs.get("settings") or {}
        with server.lock:
            server.concurrent += 1
            server.max_concurrent = max(server.max_concurrent, server.concurrent)
            server.attempts.append((len(rows), query_settings.get("insert_deduplication_token")))
        try:
            server.gate.wait(10)
            if server.fail_with is not None:
                raise server.fail_with
            if server.rejects_everything or any(BAD in row for row in rows):
                raise ServerException("DB::Exception: Cannot parse input: expected ,", code=27)
            with server.lock:
                server.inserts.append((rows, kwargs.get("settings")))
            return len(rows)
        finally:
            with server.lock:
                server.concurrent -= 1

    def disconnect(self) -> None:
        with self.server.lock:
            self.server.disconnects += 1


def settings(**overrides: Any) -> ClickHouseSettings:
    values: dict[str, Any] = {
        "url": "clickhouse://127.0.0.1:9000",
        "database": "ponix",
        "table": "processed_envelopes",
        "batch_max_rows": 100,
        "batch_max_bytes": 1_000_000,
        "batch_max_latency": 30.0,
        "max_in_flight_rows": 1000,
        "insert_timeout": 5.0,
    }
    values.update(overrides)
    return ClickHouseSettings(**values)


def rows(count: int, start: int = 0) -> list[tuple[Any, ...]]:
    return [
        (f"id-{i:06d}", "org", "dev", 1_700_000_000, 1_700_000_000, "{}")
        for i in range(start, start + count)
    ]


def bad_row(i: int) -> tuple[Any, ...]:
    return (f"bad-{i:06d}", "org", "dev", BAD, 0, "{}")


MakeWriter = Callable[..., BatchWriter]


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def make_writer(server: FakeServer) -> AsyncIterator[MakeWriter]:
    writers: list[BatchWriter] = []

    def make(
        *,
        version: tuple[int, ...] | None = (18, 16),
        layout: TableLayout | None = LAYOUT,
        concurrency: int = 2,
        shutdown_timeout: float = 0.2,
        **overrides: Any,
    ) -> BatchWriter:
        writer = BatchWriter(
            settings(**overrides),
            server_version=version,
            layout=layout,
            max_concurrent_inserts=concurrency,
            backoff=FAST_BACKOFF,
            shutdown_timeout=shutdown_timeout,
            client_factory=lambda: FakeClient(server),
        )
        writers.append(writer)
        return writer

    yield make
    server.gate.set()
    server.fail_with = None
    server.rejects_everything = False
    for writer in writers:
        await writer.close()


async def within(awaitable: Any, seconds: float = 5.0) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, within=5.0, what="the writer's state", every=0.005)


async def test_flushes_when_a_batch_reaches_batch_max_rows(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=30.0)
    first = writer.add(rows(60), 60)
    second = writer.add(rows(40, 60), 40)
    await within(asyncio.gather(first, second))
    assert [len(batch) for batch, _ in server.inserts] == [100]


async def test_flushes_when_a_batch_reaches_batch_max_bytes(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_bytes=2048, batch_max_latency=30.0)
    small = writer.add(rows(1), 1000)
    assert not small.done()
    big = writer.add(rows(1, 1), 1048)
    await within(asyncio.gather(small, big))
    assert [len(batch) for batch, _ in server.inserts] == [2]


async def test_flushes_after_batch_max_latency(make_writer: MakeWriter, server: FakeServer) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await within(writer.add(rows(3), 3))
    assert loop.time() - started >= 0.04
    assert [len(batch) for batch, _ in server.inserts] == [3]


async def test_one_insert_combines_several_adds_but_never_splits_one(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=30.0)
    futures = [writer.add(rows(30, 30 * i), 30) for i in range(4)]
    await within(asyncio.gather(*futures[:3]))
    # 30+30+30 fits, the 4th add would overflow 100: the batch went out with 90 rows.
    assert [len(batch) for batch, _ in server.inserts] == [90]
    assert not futures[3].done()
    await writer.flush()
    assert [len(batch) for batch, _ in server.inserts] == [90, 30]


async def test_future_resolves_only_after_the_insert_returned(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=10)
    future = writer.add(rows(10), 10)
    await asyncio.sleep(0)  # let the insert task start; it blocks on the gate
    await within(asyncio.to_thread(_wait_until, lambda: server.concurrent == 1))
    assert not future.done()
    server.gate.set()
    await within(future)
    assert len(server.inserts) == 1


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    event = threading.Event()
    for _ in range(int(seconds / 0.005)):
        if condition():
            return
        event.wait(0.005)
    raise AssertionError("condition not met in time")


async def test_rows_in_flight_never_exceed_the_bound_and_adds_wait_for_room(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=10, max_in_flight_rows=30, concurrency=1)
    futures = [writer.add(rows(10, 10 * i), 10) for i in range(5)]
    assert writer.in_flight_rows == 30
    ready = asyncio.ensure_future(writer.ready())
    await asyncio.sleep(0.01)
    assert not ready.done()  # full: the consumer should not fetch more
    peak = writer.in_flight_rows
    server.gate.set()
    await within(asyncio.gather(*futures))
    await within(ready)
    assert peak <= 30
    assert writer.in_flight_rows == 0
    assert sum(len(batch) for batch, _ in server.inserts) == 50


async def test_one_add_larger_than_the_bound_still_goes_through(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=10, max_in_flight_rows=10)
    await within(writer.add(rows(25), 25))
    assert [len(batch) for batch, _ in server.inserts] == [25]


async def test_at_most_max_concurrent_inserts_run_at_once(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=10, concurrency=2)
    futures = [writer.add(rows(10, 10 * i), 10) for i in range(6)]
    await within(asyncio.to_thread(_wait_until, lambda: server.concurrent == 2))
    server.gate.set()
    await within(asyncio.gather(*futures))
    assert server.max_concurrent == 2


async def test_a_store_failure_holds_the_batch_and_retries_it_in_place(
    make_writer: MakeWriter, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ponix_clickhouse.writer")
    writer = make_writer(batch_max_rows=10, version=(22, 2))
    server.fail_with = NetworkError("Connection refused (127.0.0.1:9000)")
    stored = writer.add(rows(10), 10)
    await until(lambda: len(server.attempts) >= 5)
    assert not stored.done(), "a store failure must never give the rows back by itself"
    assert writer.holding
    ready = asyncio.ensure_future(writer.ready())
    await asyncio.sleep(0.05)
    assert not ready.done(), "the consumer must stop fetching while a batch is held"
    # The same rows, with the same dedup token, every time.
    assert set(server.attempts) == {(10, dedup_token(rows(10), 0))}

    server.fail_with = None
    assert await within(stored) == ()
    await within(ready)
    assert not writer.holding
    assert [len(batch) for batch, _ in server.inserts] == [10]
    # One line when holding starts and one when the store is back, not one per attempt.
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert said == [
        "clickhouse failed an insert, holding the batch and retrying in place",
        "clickhouse accepts inserts again",
    ]


@pytest.mark.parametrize(
    "failure",
    [
        NetworkError("Connection refused (fake)"),
        ServerException("DB::Exception: Too many parts (300).", code=252),
        ServerException("DB::Exception: Cannot execute query in readonly mode", code=164),
        ServerException("DB::Exception: Table ponix.processed_envelopes doesn't exist.", code=60),
        ServerException("DB::Exception: No such column data in table", code=16),
        ServerException("DB::Exception: something nobody has seen", code=9999),
        TypeError("unsupported operand type(s)"),  # the driver, after a column changed type
    ],
    ids=["network", "too_many_parts", "readonly", "unknown_table", "drift", "unknown", "driver"],
)
async def test_every_store_failure_is_held_never_given_back(
    make_writer: MakeWriter, server: FakeServer, failure: BaseException
) -> None:
    writer = make_writer(batch_max_rows=5)
    server.fail_with = failure
    stored = writer.add(rows(5), 5)
    await until(lambda: len(server.attempts) >= 3)
    assert not stored.done()
    assert writer.holding
    server.fail_with = None
    assert await within(stored) == ()


async def test_a_bad_row_is_isolated_by_bisection_and_the_rest_stored(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=1000)
    batch = rows(1000)
    batch[617] = bad_row(617)
    rejected = await within(writer.add(batch, 1000))
    assert [r.index for r in rejected] == [617]
    assert rejected[0].error.fault is Fault.MESSAGE
    assert rejected[0].error.server_code == 27
    stored = sorted(row[0] for batch_rows, _ in server.inserts for row in batch_rows)
    assert stored == sorted(row[0] for i, row in enumerate(batch) if i != 617)
    assert not writer.holding
    # What isolating one bad row of 1,000 costs (the README quotes it): about log2(1000)+2.
    assert len(server.attempts) <= 22, len(server.attempts)


async def test_a_bad_row_fails_only_the_add_that_brought_it(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=30)
    good = writer.add(rows(10), 10)
    bad = writer.add([*rows(9, 10), bad_row(19)], 10)
    also_good = writer.add(rows(10, 20), 10)
    assert await within(good) == ()
    assert await within(also_good) == ()
    rejected = await within(bad)
    assert [(r.index, r.error.reason) for r in rejected] == [(9, "cannot_parse_input")]
    assert sum(len(batch) for batch, _ in server.inserts) == 29


async def test_a_batch_of_only_bad_rows_is_rejected_when_the_table_is_unchanged(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=2)
    rejected = await within(writer.add([bad_row(0), bad_row(1)], 2))
    assert [r.index for r in rejected] == [0, 1]
    assert not writer.holding


async def test_every_row_rejected_by_a_changed_table_is_held_as_drift(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    """A column whose type changed rejects every row with a parse error: not the rows' fault.
    With no row known to be good, the table's columns tell."""
    writer = make_writer(batch_max_rows=4)
    server.rejects_everything = True
    server.types = (*LAYOUT.types[:-1], "UInt64")
    stored = writer.add(rows(4), 4)
    await until(lambda: writer.holding)
    assert not stored.done()
    server.rejects_everything = False
    server.types = LAYOUT.types
    assert await within(stored) == ()


async def test_every_row_rejected_while_a_good_row_is_refused_too_is_held(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=3)
    assert await within(writer.add(rows(3), 3)) == ()  # now a row is known to be good
    server.rejects_everything = True  # same column types, yet every row, the good one too
    stored = writer.add(rows(3, 3), 3)
    await until(lambda: writer.holding)
    assert not stored.done()
    server.rejects_everything = False
    assert await within(stored) == ()


async def test_a_slow_insert_is_retried_with_the_same_token_and_its_connection_dropped(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=5, insert_timeout=0.05, version=(22, 2))
    stored = writer.add(rows(5), 5)
    await until(lambda: len(server.attempts) >= 2)
    assert not stored.done()
    assert writer.holding
    server.gate.set()
    assert await within(stored) == ()
    await until(lambda: server.disconnects >= 1)  # once the abandoned thread is done
    assert {token for _, token in server.attempts} == {dedup_token(rows(5), 0)}


async def test_shutdown_gives_held_rows_back_as_the_stores_fault(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=5)
    server.fail_with = ServerException("DB::Exception: readonly", code=164)
    held = writer.add(rows(5), 5)
    await until(lambda: writer.holding)
    token = Token()
    running = asyncio.ensure_future(writer.run(token))
    token.set()
    await within(running, 1.0)
    with pytest.raises(InsertError) as given_back:
        await within(held)
    assert given_back.value.fault is Fault.STORE
    assert given_back.value.reason == "held_at_shutdown"
    assert given_back.value.retry_after > 0


async def test_shutdown_with_clickhouse_hung_returns_within_its_budget(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()  # every INSERT hangs
    writer = make_writer(batch_max_rows=5, shutdown_timeout=0.3, insert_timeout=30.0)
    hung = writer.add(rows(5), 5)
    buffered = writer.add(rows(2, 5), 2)
    await until(lambda: server.concurrent == 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await within(writer.close(), 2.0)
    assert loop.time() - started < 1.0
    for future in (hung, buffered):
        with pytest.raises(InsertError):
            await within(future)


async def test_run_flushes_when_the_token_is_set(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=30.0)
    token = Token()
    runner = asyncio.ensure_future(writer.run(token))
    pending = writer.add(rows(4), 4)
    await asyncio.sleep(0)
    assert not pending.done()
    token.set()
    await within(runner)
    assert pending.result() == ()
    assert [len(batch) for batch, _ in server.inserts] == [4]


async def test_bytes_in_flight_are_bounded_too(make_writer: MakeWriter, server: FakeServer) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=1, max_in_flight_bytes=100_000, concurrency=1)
    futures = [writer.add(rows(1, i), 40_000) for i in range(5)]
    assert writer.in_flight_bytes == 80_000
    ready = asyncio.ensure_future(writer.ready())
    await asyncio.sleep(0.01)
    assert not ready.done()
    server.gate.set()
    await within(asyncio.gather(*futures))
    await within(ready)
    assert writer.in_flight_bytes == 0


async def test_an_empty_add_resolves_at_once(make_writer: MakeWriter) -> None:
    writer = make_writer()
    future = writer.add([], 0)
    assert future.done()
    assert future.result() == ()


@pytest.mark.parametrize("version", [(22, 2), None])
async def test_dedup_token_is_sha256_of_sorted_ids_from_22_2(
    make_writer: MakeWriter, server: FakeServer, version: tuple[int, ...] | None
) -> None:
    server.version = "22.2.1.1"
    writer = make_writer(batch_max_rows=3, version=version)
    batch = [rows(1, 2)[0], rows(1, 0)[0], rows(1, 1)[0]]
    await within(writer.add(batch, 3))
    _, query_settings = server.inserts[0]
    assert query_settings is not None
    assert query_settings["insert_deduplication_token"] == dedup_token(rows(3), 0)
    assert dedup_token(batch, 0) == dedup_token(list(reversed(batch)), 0)


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ((18, 16), {"insert_distributed_sync": 1}),
        ((22, 2), {"async_insert": 0, "insert_distributed_sync": 1}),
        ((25, 8), {"async_insert": 0, "distributed_foreground_insert": 1}),
    ],
)
def test_insert_settings_pin_what_a_returned_insert_means(
    version: tuple[int, ...], expected: dict[str, int]
) -> None:
    assert insert_settings(version) == expected
    assert insert_settings(version, quorum=2) == {**expected, "insert_quorum": 2}


def test_rejected_names_the_row_of_its_add() -> None:
    error = InsertError("cannot_parse_input", "x", fault=Fault.MESSAGE, server_code=27)
    assert Rejected(3, error).index == 3
