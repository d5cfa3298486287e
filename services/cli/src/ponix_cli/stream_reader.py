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

from ponix_cli.errors import CliError

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg
    from nats.js.api import ConsumerInfo

# After this long without a message while idle, the reader asks the server whether anything is
# left (the messages left may have been removed meanwhile: max_age, a purge).
STALL_TIMEOUT: Final = 5.0
# With messages still pending, a reader that gets none for this long fails rather than report a
# partial read as a whole one.
MAX_IDLE: Final = 60.0
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

    js = nc.jetstream()
    first = await _first_sequence(nc, stream, subject, start)
    if first > last_seq:
        return
    # By sequence, never by time: nats-py re-creates an ordered consumer from the sequence after
    # the last one delivered, keeping the rest of the config, and the server refuses a start
    # time next to a start sequence.
    config = ConsumerConfig(
        inactive_threshold=_INACTIVE_THRESHOLD,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=first,
    )

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
            await _wait(finished, moved, lambda: busy, sub.consumer_info, stall_timeout)
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


async def _first_sequence(nc: NatsClient, stream: str, subject: str, start: StartAt) -> int:
    """The stream sequence reading starts at. A start time is resolved once, by a consumer
    created for the purpose: the server positions it at the first message stored at or after
    that time, and reports the sequence before it as delivered."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    if start.time is None:
        return start.seq or 1
    js = nc.jetstream()
    probe = await js.add_consumer(
        stream,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=start.time,
            ack_policy=AckPolicy.NONE,
            filter_subject=subject,
            mem_storage=True,
            inactive_threshold=_INACTIVE_THRESHOLD,
        ),
    )
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, probe.name)
    delivered = probe.delivered.stream_seq if probe.delivered else 0
    return int(delivered or 0) + 1


async def _wait(
    finished: asyncio.Event,
    moved: asyncio.Event,
    busy: Callable[[], bool],
    consumer_info: Callable[[], Awaitable[ConsumerInfo]],
    stall: float,
    max_idle: float = MAX_IDLE,
) -> None:
    """Until ``finished``; when nothing moved for ``stall`` seconds and no handler is busy,
    asks the server whether anything is left: nothing is the end, something is a stall, and
    ``max_idle`` seconds of stalls are an error."""
    idle = 0.0
    while not finished.is_set():
        moved.clear()
        try:
            async with asyncio.timeout(stall):
                await moved.wait()
            idle = 0.0
        except TimeoutError:
            if busy():
                continue
            pending = (await consumer_info()).num_pending
            if not pending:
                return
            idle += stall
            if idle >= max_idle:
                raise CliError(
                    "nats.read_stalled",
                    f"the stream sent nothing for {idle:.0f} s with {pending} messages still "
                    "pending for this reader; try again, or narrow it (--from-seq, --since)",
                ) from None
