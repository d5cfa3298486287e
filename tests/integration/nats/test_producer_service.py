"""The producer service never creates or changes the stream: it waits for it within its start-up
deadline, and a stream whose settings differ from its own is left as it is."""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats import StreamMissingError, ensure_jetstream
from ponix_producer import Producer, ProducerSettings

pytestmark = pytest.mark.integration

MONTH = 30 * 24 * 3600.0


async def test_a_longer_retention_is_left_alone(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    await ensure_jetstream(js, settings.model_copy(update={"max_age": MONTH}))
    producer = await Producer.start(settings, ProducerSettings(startup_deadline=5.0))
    try:
        assert (await js.stream_info(settings.stream)).config.max_age == pytest.approx(MONTH)
    finally:
        await producer.nc.close()


async def test_it_waits_for_the_stream_the_ingester_creates(
    js: JetStreamContext, settings: NatsSettings
) -> None:
    starting = asyncio.create_task(Producer.start(settings, ProducerSettings(startup_deadline=30)))
    await ensure_jetstream(js, settings)
    async with asyncio.timeout(15):
        producer = await starting
    await producer.nc.close()


async def test_no_stream_by_the_deadline_is_one_line(settings: NatsSettings) -> None:
    with pytest.raises(StreamMissingError) as missing:
        await Producer.start(settings, ProducerSettings(startup_deadline=0.5))
    assert str(missing.value).startswith(f"nats.stream_missing: stream {settings.stream} ")
