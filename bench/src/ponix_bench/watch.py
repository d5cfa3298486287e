"""Timing a contender from the durable consumer's own state, not from the contender's word.

Each contender's consumer is created *paused*. Its processes start up (imports, connections,
migrations) and issue their pull requests, which the server holds; once ``num_waiting`` shows
every process waiting, the consumer is resumed. So start-up is never timed, and two processes
start together.

The clock starts at the server's own time of the first delivery, not at the resume: nats-server
(2.15) does not serve the requests held while paused; deliveries begin only when one of them
expires and its process asks again, up to a whole ``expires`` (1 s) after the resume, a random
share of a window of 1.5-3 s. The first info that shows a delivery gives ``delivered.last_active``
(polled every :data:`FIRST_POLL`: a few messages after the first at most).

The clock stops at the server's own time of the last ack (``ack_floor.last_active``), read
once ``ack_floor.stream_seq`` reached the stream's last sequence: polling granularity does not
shorten or lengthen the window.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo

POLL = 0.02
FIRST_POLL = 0.002
# Paused "forever": resumed explicitly by the harness.
_PAUSE_FOR = timedelta(days=1)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def create_paused(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Add the durable consumer ``config`` describes, paused until :meth:`ConsumerWatch.resume`."""
    until = _rfc3339(datetime.now(UTC) + _PAUSE_FOR)
    await js.add_consumer(stream, config=config.evolve(pause_until=until))


@dataclass(frozen=True, slots=True)
class Window:
    """Wall-clock window from the first delivery to the last ack."""

    started: datetime
    ended: datetime
    delivered: int
    redelivered: int

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


class ConsumerWatch:
    """Readiness, start and completion of one durable consumer."""

    def __init__(self, js: JetStreamContext, stream: str, consumer: str) -> None:
        self._js = js
        self._stream = stream
        self._consumer = consumer

    async def info(self) -> ConsumerInfo:
        info: ConsumerInfo = await self._js.consumer_info(self._stream, self._consumer)
        return info

    async def wait_waiting(self, processes: int, within: float, check: Callable[[], None]) -> None:
        """Return once ``processes`` pull requests wait at the paused consumer."""
        deadline = time.monotonic() + within
        while True:
            check()
            info = await self.info()
            if (info.num_waiting or 0) >= processes:
                return
            if time.monotonic() > deadline:
                msg = (
                    f"{self._consumer}: {info.num_waiting or 0} of {processes} processes "
                    f"waiting after {within:g}s"
                )
                raise TimeoutError(msg)
            await asyncio.sleep(POLL)

    async def resume(self) -> None:
        """Resume the consumer; :meth:`wait_delivering` tells when deliveries began."""
        await self._js.resume_consumer(self._stream, self._consumer)

    async def wait_delivering(self, within: float, check: Callable[[], None]) -> datetime:
        """Once resumed: the server's time of the first delivery (see the module doc)."""
        deadline = time.monotonic() + within
        while True:
            check()
            info = await self.info()
            delivered = info.delivered
            if delivered is not None and delivered.stream_seq and delivered.last_active:
                return delivered.last_active
            if time.monotonic() > deadline:
                msg = f"{self._consumer}: nothing delivered {within:g}s after the resume"
                raise TimeoutError(msg)
            await asyncio.sleep(FIRST_POLL)

    async def wait_acked(
        self, last_seq: int, started: datetime, within: float, check: Callable[[], None]
    ) -> Window:
        """Wait until every message up to ``last_seq`` is acked (or termed)."""
        deadline = time.monotonic() + within
        while True:
            check()
            info = await self.info()
            floor = info.ack_floor
            if floor is not None and floor.stream_seq >= last_seq and not info.num_ack_pending:
                ended = floor.last_active or datetime.now(UTC)
                delivered = info.delivered.consumer_seq if info.delivered else 0
                return Window(started, ended, delivered, info.num_redelivered or 0)
            if time.monotonic() > deadline:
                got = floor.stream_seq if floor else 0
                msg = f"{self._consumer}: ack floor {got} of {last_seq} after {within:g}s"
                raise TimeoutError(msg)
            await asyncio.sleep(POLL)
