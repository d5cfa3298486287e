"""BatchConsumer on a real JetStream: every outcome applied to exactly its message, heartbeats,
bounded in-flight, backpressure, failures without hot loops, and a shutdown that acks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from ponix_config import NatsSettings
from ponix_devstack import NatsServer
from ponix_nats import (
    ACK,
    BatchConsumer,
    Nak,
    Outcome,
    ProcessingResult,
    ProvisioningError,
    Term,
    ensure_jetstream,
    list_dead_letters,
)

if TYPE_CHECKING:
    from tests.support.token import Token

    from .conftest import Publish, RunConsumer, WaitForConsumer

pytestmark = pytest.mark.integration


class Recorder:
    """Base test processor: remembers every delivery (payload -> monotonic times)."""

    def __init__(self) -> None:
        self.deliveries: dict[bytes, list[float]] = defaultdict(list)
        self.calls = 0
        self.changed = asyncio.Event()

    def record(self, msgs: Sequence[Msg]) -> None:
        self.calls += 1
        now = time.monotonic()
        for msg in msgs:
            self.deliveries[msg.data].append(now)
        self.changed.set()

    async def wait_until(self, predicate: object, within: float = 10.0) -> None:
        assert callable(predicate)
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def _count(settings: NatsSettings, name: str, **labels: str) -> float:
    """A sample of the consumer's series (labels ``stream`` and ``consumer``)."""
    bound = {"stream": settings.stream, "consumer": settings.consumer, **labels}
    return REGISTRY.get_sample_value(name, bound) or 0.0


async def test_ack_and_nak_with_delay_apply_to_exactly_their_message(
    provisioned: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    class EvenOdd(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            outcomes: list[Outcome] = []
            for msg in msgs:
                first = len(self.deliveries[msg.data]) == 1
                odd = int(msg.data) % 2 == 1
                outcomes.append(Nak("test.transient", "odd", delay=0.6) if first and odd else ACK)
            return ProcessingResult(outcomes)

    payloads = [str(i).encode() for i in range(20)]
    processor = EvenOdd()
    await publish(payloads)
    async with running(processor):
        await processor.wait_until(
            lambda: all(len(processor.deliveries[p]) == 2 for p in payloads[1::2])
        )
        await wait_for_consumer(lambda i: i.num_ack_pending == 0 and i.num_pending == 0)

    for payload in payloads[0::2]:
        assert len(processor.deliveries[payload]) == 1, payload
    for payload in payloads[1::2]:
        first, second = processor.deliveries[payload]
        assert second - first >= 0.5, "redelivered before its nak delay"
    assert _count(provisioned, "ponix_envelopes_acked_total") == 20
    assert _count(provisioned, "ponix_envelopes_nakked_total", code="test.transient") == 10
    delivered = payloads + payloads[1::2]
    assert _count(provisioned, "ponix_envelopes_consumed_total") == len(delivered)
    assert _count(provisioned, "ponix_consumed_bytes_total") == sum(map(len, delivered))
    # Sampled (first and last acked message of a batch), publish to stored: under a second here.
    sampled = _count(provisioned, "ponix_end_to_end_lag_seconds_count")
    assert 1 <= sampled <= 20
    assert _count(provisioned, "ponix_end_to_end_lag_seconds_bucket", le="+Inf") == sampled
    assert 0 <= _count(provisioned, "ponix_end_to_end_lag_seconds_sum") < sampled * 5.0


async def test_term_copies_to_the_dlq_with_headers_and_is_never_redelivered(
    nc: Client,
    js: JetStreamContext,
    provisioned: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    class Poison(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            return ProcessingResult(
                [
                    Term("envelope.undecodable", "not a protobuf: tag 0")
                    if m.data == b"bad"
                    else ACK
                    for m in msgs
                ]
            )

    settings = provisioned
    advisories = await nc.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{settings.stream}.{settings.consumer}"
    )
    processor = Poison()
    await publish([b"good-1", b"bad", b"good-2"], org="acme")
    async with running(processor):
        await wait_for_consumer(lambda i: i.ack_floor is not None and i.ack_floor.stream_seq == 3)
        advisory = await advisories.next_msg(timeout=5)
    await advisories.unsubscribe()

    assert len(processor.deliveries[b"bad"]) == 1
    info = await js.consumer_info(settings.stream, settings.consumer)
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0
    assert b"not a protobuf: tag 0" in advisory.data  # the term carried its reason

    [letter] = await list_dead_letters(js, settings, limit=10)
    assert letter.payload == b"bad"
    assert letter.code == "envelope.undecodable"
    assert letter.reason == "not a protobuf: tag 0"
    assert letter.stream == settings.stream
    assert letter.sequence == 2
    assert letter.deliveries == 1
    assert letter.subject == settings.subject_for("acme")
    assert letter.msg_id == "bad"
    assert letter.failed_at is not None
    assert letter.failed_at.utcoffset() is not None
    stored = await js.get_msg(settings.dlq_stream, letter.dlq_seq)
    assert stored.headers is not None
    assert stored.headers["Nats-Msg-Id"] == f"dlq:{settings.stream}:2"


async def test_max_deliver_dead_letters_with_the_last_error(
    js: JetStreamContext,
    settings: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    settings = settings.model_copy(update={"max_deliver": 2})
    await ensure_jetstream(js, settings)

    class Flaky(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            attempt = len(self.deliveries[b"flaky"])
            return ProcessingResult(
                [
                    Nak("clickhouse.unavailable", f"connection refused #{attempt}", delay=0.05)
                    if m.data == b"flaky"
                    else ACK
                    for m in msgs
                ]
            )

    processor = Flaky()
    await publish([b"fine", b"flaky"])
    async with running(processor, settings_=settings):
        await wait_for_consumer(lambda i: i.ack_floor is not None and i.ack_floor.stream_seq == 2)

    assert len(processor.deliveries[b"flaky"]) == 2
    [letter] = await list_dead_letters(js, settings)
    assert letter.payload == b"flaky"
    assert letter.code == "clickhouse.unavailable"
    assert letter.reason == "max_deliver reached: connection refused #2"
    assert letter.deliveries == 2


async def test_in_progress_heartbeats_keep_a_slow_batch_from_redelivery(
    js: JetStreamContext,
    settings: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ponix_nats")
    settings = settings.model_copy(update={"ack_wait": 2.0})
    await ensure_jetstream(js, settings)

    class Slow(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            await asyncio.sleep(5.0)  # an insert that outlives ack_wait 2.5 times
            assert all(m.metadata.num_delivered == 1 for m in msgs)
            return ProcessingResult.ack_all(len(msgs))

    processor = Slow()
    await publish([b"a", b"b", b"c"])
    async with running(processor, settings_=settings) as token:
        await processor.wait_until(lambda: processor.calls >= 1)
        token.set()  # run() returns only once the slow batch is acked

    assert processor.calls == 1
    assert all(len(times) == 1 for times in processor.deliveries.values())
    info = await js.consumer_info(settings.stream, settings.consumer)
    assert info.num_redelivered == 0
    assert info.num_ack_pending == 0
    # Meanwhile the loop kept fetching nothing every fetch_expires: normal, not worth a warning.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_shutdown_waits_for_the_in_flight_batch_and_acks_it(
    nc: Client,
    js: JetStreamContext,
    provisioned: NatsSettings,
    publish: Publish,
    token: Token,
) -> None:
    release = asyncio.Event()
    finished: list[float] = []

    class Blocked(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            await release.wait()  # the writer's insert, still running at SIGTERM
            finished.append(time.monotonic())
            return ProcessingResult.ack_all(len(msgs))

    processor = Blocked()
    await publish([b"x", b"y"])
    run = asyncio.create_task(BatchConsumer(nc, provisioned, processor).run(token))
    await processor.wait_until(lambda: len(processor.deliveries) == 2)
    token.set()
    asyncio.get_running_loop().call_later(0.3, release.set)
    async with asyncio.timeout(10):
        await run
    returned = time.monotonic()

    assert finished
    assert finished[0] <= returned
    info = await js.consumer_info(provisioned.stream, provisioned.consumer)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0
    assert info.num_redelivered == 0


async def test_in_flight_messages_never_exceed_the_bound(
    provisioned: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    settings = provisioned.model_copy(update={"batch_size": 15})

    class Counting(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.unresolved = 0
            self.peak = 0

        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            self.unresolved += len(msgs)
            self.peak = max(self.peak, self.unresolved)
            await asyncio.sleep(0.05)  # the insert's duration, so batches overlap
            self.unresolved -= len(msgs)
            return ProcessingResult.ack_all(len(msgs))

    processor = Counting()
    await publish([f"m{i}".encode() for i in range(200)])
    async with running(processor, settings_=settings, max_in_flight=40):
        await wait_for_consumer(lambda i: i.num_pending == 0 and i.num_ack_pending == 0)

    assert len(processor.deliveries) == 200
    assert processor.peak <= 40
    assert processor.peak > 15, "batches were not processed concurrently"


async def test_processor_failure_naks_the_batch_with_backoff_not_a_hot_loop(
    provisioned: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = provisioned.model_copy(update={"nak_delay_initial": 0.5})

    class Broken(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            if self.calls == 1:
                raise RuntimeError("decoder exploded")
            return ProcessingResult.ack_all(len(msgs))

    processor = Broken()
    await publish([b"p", b"q"])
    async with running(processor, settings_=settings):
        await wait_for_consumer(lambda i: i.num_ack_pending == 0 and i.num_pending == 0)

    for payload in (b"p", b"q"):
        first, second = processor.deliveries[payload]  # exactly two deliveries each
        assert second - first >= 0.45, "nakked without the backoff delay"
    failures = [
        r for r in caplog.records if r.getMessage() == "processor failed, nakking the batch"
    ]
    assert len(failures) == 1


async def test_fetching_waits_while_the_processor_is_not_ready(
    js: JetStreamContext,
    provisioned: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    asked = asyncio.Event()
    healthy = asyncio.Event()

    class Gated(Recorder):
        @property
        def accepting(self) -> bool:
            return healthy.is_set()

        async def ready(self) -> None:
            asked.set()
            await healthy.wait()  # ClickHouse is down; the writer waits it out

        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            return ProcessingResult.ack_all(len(msgs))

    processor = Gated()
    await publish([b"1", b"2", b"3"])
    async with running(processor):
        await asyncio.wait_for(asked.wait(), 5)
        info = await js.consumer_info(provisioned.stream, provisioned.consumer)
        assert info.delivered is not None
        assert info.delivered.consumer_seq == 0, "fetched while the processor was not ready"
        healthy.set()
        await wait_for_consumer(lambda i: i.num_pending == 0 and i.num_ack_pending == 0)
    assert len(processor.deliveries) == 3


async def test_shutdown_while_waiting_for_readiness_returns_promptly(
    provisioned: NatsSettings, running: RunConsumer
) -> None:
    class NeverReady(Recorder):
        accepting = False

        async def ready(self) -> None:
            await asyncio.Event().wait()

        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            raise AssertionError("never fetched")

    started = time.monotonic()
    async with running(NeverReady()):
        pass
    assert time.monotonic() - started < 2.0


async def test_missing_consumer_is_a_provisioning_error(
    nc: Client, settings: NatsSettings, token: Token
) -> None:
    with pytest.raises(ProvisioningError, match="ensure_jetstream"):
        await BatchConsumer(nc, settings, Recorder()).run(token)  # type: ignore[arg-type]


async def test_consumer_rides_out_a_server_restart(
    nats_server: NatsServer,
    nc: Client,
    js: JetStreamContext,
    settings: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    settings = settings.model_copy(update={"storage": "file"})
    await ensure_jetstream(js, settings)

    class Acking(Recorder):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            self.record(msgs)
            return ProcessingResult.ack_all(len(msgs))

    processor = Acking()
    async with running(processor, settings_=settings):
        await publish([b"before"])
        await processor.wait_until(lambda: b"before" in processor.deliveries)
        nats_server.kill()
        nats_server.start()
        await publish([b"after"])  # the producer's publish waits out the reconnect
        await processor.wait_until(lambda: b"after" in processor.deliveries, within=15)
        await wait_for_consumer(lambda i: i.num_ack_pending == 0 and i.num_pending == 0)
    assert nc.is_connected
