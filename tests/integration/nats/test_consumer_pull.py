"""BatchConsumer's own pull loop (JetStream's pull protocol on public nats-py API): a trickle is
handed over while its request is still open, and a deleted consumer ends the loop with the
reason instead of pulling into the void."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats import BatchConsumer, ProcessingResult, ProvisioningError, ensure_jetstream

if TYPE_CHECKING:
    from tests.support.token import Token

    from .conftest import Publish, RunConsumer, WaitForConsumer

pytestmark = pytest.mark.integration


class Acking:
    def __init__(self) -> None:
        self.batches: list[list[bytes]] = []
        self.changed = asyncio.Event()

    async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
        self.batches.append([m.data for m in msgs])
        self.changed.set()
        return ProcessingResult.ack_all(len(msgs))

    async def wait_for(self, count: int) -> None:
        while sum(map(len, self.batches)) < count:
            self.changed.clear()
            await self.changed.wait()


async def test_a_trickle_is_handed_over_while_its_pull_request_is_still_open(
    js: JetStreamContext,
    settings: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    # One request asks for 50 and may wait 4 s for them; each message must not wait for it.
    settings = settings.model_copy(update={"fetch_expires": 4.0, "batch_size": 50})
    await ensure_jetstream(js, settings)
    processor = Acking()
    async with running(processor, settings_=settings):
        await wait_for_consumer(lambda i: (i.num_waiting or 0) >= 1)
        for n in range(3):
            await publish([f"t{n}".encode()])
            async with asyncio.timeout(2.0):
                await processor.wait_for(n + 1)
        await wait_for_consumer(lambda i: i.num_ack_pending == 0 and i.num_pending == 0)
    assert [b for batch in processor.batches for b in batch] == [b"t0", b"t1", b"t2"]


async def test_a_consumer_deleted_while_consuming_stops_the_loop_with_the_reason(
    nc: Client,
    js: JetStreamContext,
    provisioned: NatsSettings,
    publish: Publish,
    token: Token,
    wait_for_consumer: WaitForConsumer,
) -> None:
    processor = Acking()
    run = asyncio.create_task(BatchConsumer(nc, provisioned, processor).run(token))
    await publish([b"before"])
    async with asyncio.timeout(5):
        await processor.wait_for(1)
    await wait_for_consumer(lambda i: (i.num_waiting or 0) >= 1 and i.num_ack_pending == 0)
    await js.delete_consumer(provisioned.stream, provisioned.consumer)
    async with asyncio.timeout(10):
        with pytest.raises(ProvisioningError, match="deleted"):
            await run
