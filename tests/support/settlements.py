"""What the ingester tells JetStream about each delivery, watched from outside.

An ack, nak, ``in_progress`` or term is a publish on the delivery's reply subject,
``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>``, so a
plain subscription on ``$JS.ACK.<stream>.<consumer>.>`` sees every one of them with the delivery
count of the message it settles. The largest count seen is the largest number of deliveries of
any message (a delivery that was never settled, as after a SIGKILL, shows in the next one's
count), without asking the ingester anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

__all__ = ("Settlements",)

# Reply subject tokens: $JS ACK stream consumer delivered sseq cseq time pending.
_TOKENS: Final = 9
_KINDS: Final = {b"": "ack", b"+ACK": "ack", b"-NAK": "nak", b"+WPI": "in_progress"}
# The test's own connection must not call the watcher a slow consumer in a 200k-message run.
_PENDING_MESSAGES: Final = 2_000_000


@dataclass
class Settlements:
    """Counts of what was sent for the consumer's deliveries since :meth:`watch`."""

    stream: str
    consumer: str
    max_deliveries: int = 0
    """The largest delivery count any settled message had (1: nothing was redelivered)."""
    counts: dict[str, int] = field(default_factory=dict)
    """By kind: ``ack``, ``nak``, ``in_progress``, ``term``."""
    redelivered: set[int] = field(default_factory=set)
    """Stream sequences settled on a delivery after their first."""
    _subscription: Subscription | None = None

    @classmethod
    async def watch(cls, nc: NatsClient, stream: str, consumer: str) -> Settlements:
        watcher = cls(stream, consumer)
        watcher._subscription = await nc.subscribe(
            f"$JS.ACK.{stream}.{consumer}.>",
            cb=watcher._on_settlement,
            pending_msgs_limit=_PENDING_MESSAGES,
            pending_bytes_limit=0,
        )
        # The server knows the subscription before anything is published on it.
        await nc.flush()
        return watcher

    def count(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    async def stop(self) -> None:
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.unsubscribe()

    async def _on_settlement(self, msg: Msg) -> None:
        tokens = msg.subject.split(".")
        if len(tokens) != _TOKENS:
            return
        delivered = int(tokens[4])
        data = msg.data
        kind = _KINDS.get(data[:4]) or ("term" if data.startswith(b"+TERM") else "other")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if delivered > self.max_deliveries:
            self.max_deliveries = delivered
        if delivered > 1 and kind != "in_progress":
            self.redelivered.add(int(tokens[5]))
