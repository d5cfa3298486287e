"""Reading the main stream for ``ponix audit`` and ``ponix stream peek``, without disturbing it.

Messages come through an *ordered consumer*: ephemeral, in memory, no acks, flow-controlled, and
re-created by nats-py past any gap. It is a consumer of its own, so the durable consumer the
ingesters share is never touched, and the stream's configuration is only read, never updated.
The server deletes it after ``inactive_threshold`` if the reader dies without unsubscribing.

Push, not pull: nats-py's ``fetch`` costs two tasks per message, which is most of the time of an
audit; a subscription callback costs a queue hand-off. Flow control is the backpressure: nats-py
answers the server's flow-control requests only once the messages before them were handed to
the callback, so while a handler awaits (an audit checking a chunk against ClickHouse) the
server stops sending and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

# Reading stops when nothing arrives for this long while idle (the messages left were removed
# meanwhile: max_age, a purge).
STALL_TIMEOUT: Final = 5.0
_INACTIVE_THRESHOLD: Final = 30.0

Handler = Callable[["Msg", int], Awaitable[bool]]
"""``handle(msg, stream_seq)``; returns False to stop reading."""


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where reading starts: a stream sequence, a time, or (neither) the first message."""

    seq: int | None = None
    time: datetime | None = None

    def describe(self) -> str:
        if self.seq is not None:
            return f"from seq {self.seq}"
        if self.time is not None:
            return f"since {self.time.isoformat(timespec='seconds')}"
        return "from the first message"


async def read_messages(
    nc: NatsClient,
    *,
    stream: str,
    subject: str,
    start: StartAt,
    last_seq: int,
    handle: Handler,
    stall_timeout: float = STALL_TIMEOUT,
) -> None:
    """Hand every message of ``stream`` matching ``subject`` from ``start`` up to ``last_seq``
    to ``handle``, in stream order, one at a time."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    config = ConsumerConfig(inactive_threshold=_INACTIVE_THRESHOLD)
    if start.seq is not None:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = start.seq
    elif start.time is not None:
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = start.time
    else:
        config.deliver_policy = DeliverPolicy.ALL

    finished = asyncio.Event()
    moved = asyncio.Event()
    busy = False
    failure: list[BaseException] = []

    async def on_message(msg: Msg) -> None:
        nonlocal busy
        if finished.is_set():
            return
        busy = True
        try:
            meta = msg.metadata
            seq = meta.sequence.stream
            done = seq > last_seq or not await handle(msg, seq)
            if done or seq >= last_seq or not meta.num_pending:
                finished.set()
        except Exception as exc:  # noqa: BLE001 - raised by read_messages, not lost in nats-py
            failure.append(exc)
            finished.set()
        finally:
            busy = False
            moved.set()

    js = nc.jetstream()
    sub = await js.subscribe(
        subject,
        stream=stream,
        cb=on_message,
        ordered_consumer=True,
        config=config,
        deliver_policy=config.deliver_policy,
        inactive_threshold=_INACTIVE_THRESHOLD,
    )
    try:
        info = await sub.consumer_info()
        if info.num_pending or (info.delivered and info.delivered.consumer_seq):
            await _wait(finished, moved, lambda: busy, stall_timeout)
    finally:
        finished.set()
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        # nats-py leaves an unsubscribed ephemeral to the server's inactive_threshold; delete it
        # now so `nats consumer ls` shows only the durable one again.
        with contextlib.suppress(Exception):
            name = (await sub.consumer_info()).name
            await js.delete_consumer(stream, name)
    if failure:
        raise failure[0]


async def _wait(
    finished: asyncio.Event, moved: asyncio.Event, busy: Callable[[], bool], stall: float
) -> None:
    while not finished.is_set():
        moved.clear()
        try:
            async with asyncio.timeout(stall):
                await moved.wait()
        except TimeoutError:
            if not busy():
                return
