"""Fixtures of the NATS lib's integration tests: per-test stream/consumer names on the shared
nats-server, a connected client, and a consumer runner that always shuts its consumer down."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo

from ponix_config import NatsSettings
from ponix_nats import BatchConsumer, EnvelopeProducer, connect, ensure_jetstream
from tests.support.token import Token


@pytest.fixture
def token() -> Token:
    return Token()


@pytest.fixture
def settings(nats_url: str, unique: str) -> NatsSettings:
    return NatsSettings(
        url=nats_url,
        stream=f"S_{unique}",
        subject_prefix=f"env_{unique}",
        consumer=f"c_{unique}",
        dlq_stream=f"S_{unique}_DLQ",
        dlq_subject=f"dlq_{unique}",
        storage="memory",
        batch_size=50,
        fetch_expires=0.25,
        ack_wait=5.0,
        max_deliver=5,
        nak_delay_initial=0.2,
        nak_delay_max=2.0,
        duplicate_window=60.0,
        max_age=3600.0,
        connect_timeout=2.0,
    )


@pytest.fixture
async def nc(settings: NatsSettings) -> AsyncIterator[Client]:
    client = await connect(settings, name="ponix-nats-tests")
    yield client
    js = client.jetstream()
    for stream in (settings.stream, settings.dlq_stream):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
    await client.close()


@pytest.fixture
def js(nc: Client) -> JetStreamContext:
    return nc.jetstream(timeout=2.0)


@pytest.fixture
async def provisioned(js: JetStreamContext, settings: NatsSettings) -> NatsSettings:
    await ensure_jetstream(js, settings)
    return settings


WaitForConsumer = Callable[..., Awaitable[ConsumerInfo]]


@pytest.fixture
def wait_for_consumer(js: JetStreamContext, settings: NatsSettings) -> WaitForConsumer:
    """Poll consumer_info until ``predicate(info)`` holds, or fail at the monotonic deadline.
    Used only where the server's state is the thing under test (no client event exists)."""

    async def wait(
        predicate: Callable[[ConsumerInfo], bool],
        *,
        within: float = 10.0,
        consumer: str | None = None,
    ) -> ConsumerInfo:
        deadline = time.monotonic() + within
        while True:
            info: ConsumerInfo = await js.consumer_info(
                settings.stream, consumer or settings.consumer
            )
            if predicate(info):
                return info
            if time.monotonic() >= deadline:
                pytest.fail(f"consumer never reached the expected state: {info}")
            await asyncio.sleep(0.05)

    return wait


Publish = Callable[..., Awaitable[None]]


@pytest.fixture
def publish(nc: Client, settings: NatsSettings) -> Publish:
    """``await publish([b"a", b"b"], org="acme")``: each payload with msg id ``<payload>``."""

    async def send(payloads: list[bytes], *, org: str = "acme") -> None:
        producer = EnvelopeProducer(nc, settings)
        try:
            for payload in payloads:
                await producer.send(
                    payload, msg_id=payload.decode(), subject=settings.subject_for(org)
                )
            await producer.flush()
        finally:
            await producer.close()

    return send


RunConsumer = Callable[..., contextlib.AbstractAsyncContextManager[Token]]


@pytest.fixture
def running(nc: Client, settings: NatsSettings) -> RunConsumer:
    """``async with running(processor, **kwargs) as token:`` runs a BatchConsumer until the block
    ends (or the test sets ``token``), then waits for ``run`` to return."""

    @contextlib.asynccontextmanager
    async def run(
        processor: Any, *, settings_: NatsSettings | None = None, **kwargs: Any
    ) -> AsyncIterator[Token]:
        consumer = BatchConsumer(nc, settings_ or settings, processor, **kwargs)
        token = Token()
        task = asyncio.create_task(consumer.run(token))
        try:
            yield token
        finally:
            token.set()
            async with asyncio.timeout(15):
                await task

    return run
