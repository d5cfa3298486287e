"""BatchConsumer's own pull loop (JetStream's pull protocol on public nats-py API): a trickle is
handed over while its request is still open, the next request is out before a full batch is
decoded, and a deleted consumer ends the loop with the reason instead of pulling into the
void."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats import (
    BatchConsumer,
    ProcessingResult,
    ProvisioningError,
    connect,
    ensure_jetstream,
)

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


async def test_the_next_request_is_out_while_a_full_batch_holds_the_loop(
    js: JetStreamContext,
    settings: NatsSettings,
    publish: Publish,
    running: RunConsumer,
    wait_for_consumer: WaitForConsumer,
) -> None:
    # Decoding a batch holds the event loop (CPU, no await). The request for the next batch
    # must already be on its way then, or the server idles for as long as the decoding takes.
    settings = settings.model_copy(update={"fetch_expires": 4.0, "batch_size": 10})
    await ensure_jetstream(js, settings)
    seen_waiting = threading.Event()

    async def observe() -> None:  # its own loop and connection: the consumer's loop is held
        observer = await connect(settings, name="ponix-nats-tests-observer")
        try:
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                info = await observer.jetstream().consumer_info(settings.stream, settings.consumer)
                if info.num_ack_pending == 10 and (info.num_waiting or 0) >= 1:
                    seen_waiting.set()
                    return
                await asyncio.sleep(0.02)
        finally:
            await observer.close()

    class Decoding(Acking):
        async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
            if not self.batches:
                watcher = threading.Thread(target=asyncio.run, args=(observe(),))
                watcher.start()
                watcher.join()  # the loop is held, as by decoding, until the observer is done
            return await super().process(msgs)

    processor = Decoding()
    await publish([f"m{n}".encode() for n in range(10)])
    async with running(processor, settings_=settings):
        async with asyncio.timeout(10):
            await processor.wait_for(10)
        await wait_for_consumer(lambda i: i.num_ack_pending == 0)
    assert seen_waiting.is_set(), "no pull request was open while the first batch was decoded"


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
