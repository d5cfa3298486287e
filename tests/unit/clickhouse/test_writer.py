"""BatchWriter logic against an in-memory stand-in for clickhouse-driver's Client.

The real-server behaviour (rows selectable, duplicates collapsing, outages) is in
tests/integration/clickhouse; here every rule is checked deterministically.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError, ServerException

from ponix_clickhouse import Backoff, BatchWriter, InsertError, dedup_token
from ponix_config import ClickHouseSettings

FAST_BACKOFF = Backoff(initial=0.05, multiplier=2.0, maximum=0.2, jitter=0.0)


@dataclass
class FakeServer:
    """What every FakeClient talks to; its knobs are set by the test thread."""

    version: str = "18.16.1"
    inserts: list[tuple[list[tuple[Any, ...]], dict[str, Any] | None]] = field(default_factory=list)
    fail_with: BaseException | None = None
    reject_rows_with: object = None  # a value whose presence in a batch fails it (bad row)
    pings_fail: bool = False
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
        if query == "SELECT 1":
            if server.pings_fail:
                raise NetworkError("Connection refused (fake)")
            return [(1,)]
        assert query.startswith("INSERT INTO `ponix`.`processed_envelopes` (`id`, ")
        assert kwargs["types_check"] is False
        with server.lock:
            server.concurrent += 1
            server.max_concurrent = max(server.max_concurrent, server.concurrent)
        try:
            server.gate.wait(10)
            if server.fail_with is not None:
                raise server.fail_with
            rows = list(params)
            if server.reject_rows_with is not None and any(
                server.reject_rows_with in row for row in rows
            ):
                raise struct.error("required argument is not an integer")
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


MakeWriter = Callable[..., BatchWriter]


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


@pytest.fixture
async def make_writer(server: FakeServer) -> AsyncIterator[MakeWriter]:
    writers: list[BatchWriter] = []

    def make(
        *, dedup_tokens: bool | None = False, concurrency: int = 2, **overrides: Any
    ) -> BatchWriter:
        writer = BatchWriter(
            settings(**overrides),
            dedup_tokens=dedup_tokens,
            max_concurrent_inserts=concurrency,
            backoff=FAST_BACKOFF,
            client_factory=lambda: FakeClient(server),
        )
        writers.append(writer)
        return writer

    yield make
    server.gate.set()
    server.fail_with = None
    server.pings_fail = False
    for writer in writers:
        await writer.close()


async def within(awaitable: Any, seconds: float = 5.0) -> Any:
    async with asyncio.timeout(seconds):
        return await awaitable


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
    assert writer.waiting_rows == 20
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


async def test_transient_failure_fails_the_futures_pauses_and_recovers(
    make_writer: MakeWriter, server: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ponix_clickhouse.writer")
    writer = make_writer(batch_max_rows=10)
    server.fail_with = NetworkError("Connection refused (127.0.0.1:9000)")
    server.pings_fail = True
    with pytest.raises(InsertError) as failed:
        await within(writer.add(rows(10), 10))
    assert failed.value.transient
    assert failed.value.reason == "network"
    assert failed.value.retry_after > 0
    assert not writer.healthy

    # While backing off, batches fail fast without touching the server.
    attempts = len(server.inserts)
    with pytest.raises(InsertError) as fast:
        await within(writer.add(rows(10, 10), 10))
    assert fast.value.transient
    assert fast.value.reason == "backing_off"
    assert len(server.inserts) == attempts

    ready = asyncio.ensure_future(writer.ready())
    await asyncio.sleep(0.3)  # several probe periods: the probe keeps failing
    assert not ready.done()
    server.fail_with = None
    server.pings_fail = False
    await within(ready)
    assert writer.healthy
    await within(writer.add(rows(10, 20), 10))
    assert len(server.inserts) == 1
    # The operator reads one line when the outage starts and one when it ends, not one a batch.
    said = [r.getMessage() for r in caplog.records if r.name == "ponix_clickhouse.writer"]
    assert said == [
        "clickhouse insert failed, backing off",
        "clickhouse reachable again, resuming inserts",
    ]


async def test_too_many_parts_is_transient(make_writer: MakeWriter, server: FakeServer) -> None:
    writer = make_writer(batch_max_rows=5)
    server.fail_with = ServerException("DB::Exception: Too many parts (300).", code=252)
    with pytest.raises(InsertError) as failed:
        await within(writer.add(rows(5), 5))
    assert failed.value.transient
    assert failed.value.reason == "too_many_parts"
    assert failed.value.server_code == 252


async def test_a_bad_row_fails_only_the_add_that_brought_it(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=30)
    good = writer.add(rows(10), 10)
    bad_rows = [*rows(9, 10), ("bad", "org", "dev", "not a timestamp", 0, "{}")]
    bad = writer.add(bad_rows, 10)
    also_good = writer.add(rows(10, 20), 10)
    server.reject_rows_with = "not a timestamp"
    await within(asyncio.gather(good, also_good))
    with pytest.raises(InsertError) as failed:
        await within(bad)
    assert not failed.value.transient
    assert failed.value.reason == "bad_row"
    assert writer.healthy  # a bad row is not an outage
    assert sorted(len(batch) for batch, _ in server.inserts) == [10, 10]


async def test_dedup_token_is_sha256_of_sorted_ids_when_enabled(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=3, dedup_tokens=True)
    batch = [rows(1, 2)[0], rows(1, 0)[0], rows(1, 1)[0]]
    await within(writer.add(batch, 3))
    _, query_settings = server.inserts[0]
    assert query_settings == {"insert_deduplication_token": dedup_token(rows(3), 0)}
    assert dedup_token(batch, 0) == dedup_token(list(reversed(batch)), 0)


@pytest.mark.parametrize(("version", "expected"), [("18.16.1", False), ("22.2.1.1", True)])
async def test_dedup_tokens_follow_the_server_version(
    make_writer: MakeWriter, server: FakeServer, version: str, expected: bool
) -> None:
    server.version = version
    writer = make_writer(batch_max_rows=2, dedup_tokens=None)
    await within(writer.add(rows(2), 2))
    _, query_settings = server.inserts[0]
    assert (query_settings is not None) is expected


async def test_insert_timeout_fails_transient_and_drops_the_connection(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    server.gate.clear()
    writer = make_writer(batch_max_rows=5, insert_timeout=0.05)
    with pytest.raises(InsertError) as failed:
        await within(writer.add(rows(5), 5))
    assert failed.value.transient
    assert failed.value.reason == "timeout"
    server.gate.set()
    await within(writer.flush())
    assert server.disconnects == 1
    assert writer.in_flight_rows == 0


async def test_close_flushes_what_is_buffered_and_refuses_more(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=30.0)
    pending = writer.add(rows(7), 7)
    await within(writer.close())
    assert pending.done()
    assert pending.exception() is None
    with pytest.raises(InsertError) as refused:
        await within(writer.add(rows(1), 1))
    assert refused.value.transient
    assert refused.value.reason == "closed"


async def test_run_flushes_when_the_token_is_set(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=100, batch_max_latency=30.0)
    token = asyncio.Event()
    runner = asyncio.ensure_future(writer.run(token))
    pending = writer.add(rows(4), 4)
    await asyncio.sleep(0)
    assert not pending.done()
    token.set()
    await within(runner)
    assert pending.done()
    assert [len(batch) for batch, _ in server.inserts] == [4]


async def test_an_empty_add_resolves_at_once(make_writer: MakeWriter) -> None:
    writer = make_writer()
    future = writer.add([], 0)
    assert future.done()
    assert future.result() is None


async def test_close_during_an_outage_returns_promptly(
    make_writer: MakeWriter, server: FakeServer
) -> None:
    writer = make_writer(batch_max_rows=5)
    server.fail_with = NetworkError("Connection refused (fake)")
    server.pings_fail = True
    with pytest.raises(InsertError):
        await within(writer.add(rows(5), 5))
    buffered = writer.add(rows(2, 5), 2)
    # Two closers at once (a runner closer and a test teardown, say) both return.
    await within(asyncio.gather(writer.close(), writer.close()), 3.0)
    with pytest.raises(InsertError) as failed:
        await within(buffered)
    assert failed.value.transient
