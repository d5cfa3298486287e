"""Idempotent, pipelined publishing of envelopes to JetStream.

Every message carries ``Nats-Msg-Id`` (the envelope id), so a resend inside the stream's
duplicate window is dropped by JetStream and counted as a duplicate. That is what makes the
resends below safe.

Pipelining: each publish goes out with a reply subject under one inbox subscription of ours,
and its PubAck is matched back by that subject: no task and no request round-trip per message,
at most ``max_in_flight`` unacknowledged. nats-py 2.16's ``publish_async`` does the same but
raises inside its reply callback when JetStream answers with an error (message too large,
...), so that publish's future never resolves; hence our own, on public ``Client`` API only.

Resends: core NATS is at-most-once, so a publish written to a socket that just died (a server
restart, before the client noticed) is simply gone. A message without its PubAck after
``resend_after`` seconds, or answered "no responders" (JetStream not up yet), is sent again
under the same ``Nats-Msg-Id``; after ``ack_timeout`` seconds it fails with
:class:`PublishError`. Resends are driven by ``send``, ``publish`` and ``flush`` themselves
while they wait, so the producer owns no background task.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Final, Protocol

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe
from ponix_nats.errors import PublishError
from ponix_nats.headers import NATS_MSG_ID
from ponix_telemetry import metrics

# Prometheus counters are bumped once per this many PubAcks (and on flush), not per message.
_REPORT_EVERY: Final = 1024
_NO_RESPONDERS: Final = "503"


@dataclass(frozen=True, slots=True)
class PublishAck:
    """JetStream's receipt: where the message is stored, and whether it was a duplicate of a
    ``Nats-Msg-Id`` already in the duplicate window (then ``seq`` is the original's)."""

    stream: str
    seq: int
    duplicate: bool


class SerializableEnvelope(Protocol):
    """What ``publish_envelope`` needs of an envelope message (the upb ``ProcessedEnvelope``)."""

    @property
    def id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...
    def SerializeToString(self) -> bytes: ...  # noqa: N802 - protobuf's name


class _Pending:
    """A publish awaiting its PubAck; the payload is kept (bounded by max_in_flight) to resend."""

    __slots__ = (
        "first_sent_at",
        "future",
        "headers",
        "last_error",
        "payload",
        "sent_at",
        "subject",
    )

    def __init__(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str],
        future: asyncio.Future[PublishAck] | None,
        now: float,
    ) -> None:
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.future = future
        self.first_sent_at = now
        self.sent_at = now
        self.last_error = ""

    @property
    def msg_id(self) -> str:
        return self.headers[NATS_MSG_ID]


class EnvelopeProducer:
    """Publishes to the envelope stream with at most ``max_in_flight`` PubAcks outstanding.

    A publish unanswered for ``resend_after`` seconds is resent (same ``Nats-Msg-Id``); one
    still unacknowledged ``ack_timeout`` seconds after it was first sent fails with
    :class:`PublishError`, so a JetStream that stops answering never becomes a hang. Call
    ``close()`` when done (it does not close the connection).
    """

    def __init__(
        self,
        nc: Client,
        settings: NatsSettings,
        *,
        max_in_flight: int = 256,
        ack_timeout: float = 10.0,
        resend_after: float = 2.0,
    ) -> None:
        if max_in_flight < 1:
            msg = "max_in_flight must be at least 1"
            raise ValueError(msg)
        self._nc = nc
        self._settings = settings
        self._ack_timeout = ack_timeout
        self._resend_after = min(resend_after, ack_timeout)
        self._slots = asyncio.Semaphore(max_in_flight)
        # Insertion order is send order: the first entry is always the oldest.
        self._waiting: dict[str, _Pending] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._sub: Subscription | None = None
        self._inbox = ""
        self._next_token = 0
        self._sweeping = False
        self._failure: PublishError | None = None
        self._unreported_acks = 0
        self._unreported_duplicates = 0
        self._metrics = metrics.PublisherMetrics(settings.stream)
        self.published = 0
        """PubAcks received (duplicates included) since this producer was made."""
        self.duplicates = 0
        """Of those, how many JetStream dropped as duplicates."""
        self.resent = 0
        """Publishes sent again for want of a PubAck."""

    @property
    def in_flight(self) -> int:
        """Publishes sent and not yet acknowledged."""
        return len(self._waiting)

    async def send(self, payload: bytes, *, msg_id: str, subject: str) -> None:
        """Send without waiting for the PubAck; waits only for a free in-flight slot.

        A failure of an earlier ``send`` is raised here (fail fast) or by ``flush``.
        """
        self._raise_failure()
        await self._send(payload, msg_id, subject, None)

    async def publish(self, payload: bytes, *, msg_id: str, subject: str) -> PublishAck:
        """Send and wait for this message's PubAck (other sends stay in flight meanwhile)."""
        future: asyncio.Future[PublishAck] = asyncio.get_running_loop().create_future()
        await self._send(payload, msg_id, subject, future)
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), self._resend_after)
            except TimeoutError:
                await self._sweep()

    async def send_envelope(
        self,
        envelope: SerializableEnvelope | bytes,
        *,
        envelope_id: str | None = None,
        organization_id: str | None = None,
    ) -> None:
        """``send`` an envelope on ``<prefix>.<organization_id>`` with its id as ``Nats-Msg-Id``."""
        payload, msg_id, subject = self._envelope(envelope, envelope_id, organization_id)
        await self.send(payload, msg_id=msg_id, subject=subject)

    async def publish_envelope(
        self,
        envelope: SerializableEnvelope | bytes,
        *,
        envelope_id: str | None = None,
        organization_id: str | None = None,
    ) -> PublishAck:
        """``publish`` an envelope; ids default to the message's own fields."""
        payload, msg_id, subject = self._envelope(envelope, envelope_id, organization_id)
        return await self.publish(payload, msg_id=msg_id, subject=subject)

    async def flush(self) -> None:
        """Wait until every sent message has its PubAck (or has failed); raise the first
        failure, if any. The failure is cleared once raised: the producer can be used again."""
        while not self._idle.is_set():
            try:
                await asyncio.wait_for(self._idle.wait(), self._resend_after)
            except TimeoutError:
                await self._sweep()
        self._report()
        self._raise_failure()

    async def close(self) -> None:
        """Stop listening for PubAcks (``flush`` first to wait for them)."""
        for pending in self._drain_waiting():
            self._fail(pending, "producer closed")
        self._report()
        sub, self._sub = self._sub, None
        if sub is not None and not self._nc.is_closed:
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, *UNAVAILABLE_ERRORS):
                pass  # the connection is going away; so is the subscription

    def _envelope(
        self,
        envelope: SerializableEnvelope | bytes,
        envelope_id: str | None,
        organization_id: str | None,
    ) -> tuple[bytes, str, str]:
        if isinstance(envelope, bytes | bytearray | memoryview):
            if envelope_id is None or organization_id is None:
                msg = "envelope bytes need envelope_id and organization_id"
                raise ValueError(msg)
            payload = bytes(envelope)
        else:
            payload = envelope.SerializeToString()
            envelope_id = envelope_id if envelope_id is not None else envelope.id
            if organization_id is None:
                organization_id = envelope.organization_id
        if not envelope_id:
            msg = "an envelope needs an id: it is the Nats-Msg-Id that makes publishing idempotent"
            raise ValueError(msg)
        return payload, envelope_id, self._settings.subject_for(organization_id)

    async def _send(
        self,
        payload: bytes,
        msg_id: str,
        subject: str,
        future: asyncio.Future[PublishAck] | None,
    ) -> None:
        if self._sub is None:
            self._inbox = self._nc.new_inbox() + "."
            self._sub = await self._nc.subscribe(self._inbox + "*", cb=self._on_reply)
        while self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), self._resend_after)
                break
            except TimeoutError:
                await self._sweep()
        else:
            await self._slots.acquire()
        pending = _Pending(subject, payload, {NATS_MSG_ID: msg_id}, future, time.monotonic())
        self._idle.clear()
        try:
            await self._transmit(pending)
        except BaseException as exc:
            self._slots.release()
            if not self._waiting:
                self._idle.set()
            if isinstance(exc, nats.errors.Error | OSError):
                raise PublishError(subject, msg_id, describe(exc)) from None
            raise

    async def _transmit(self, pending: _Pending) -> None:
        self._next_token += 1
        token = self._inbox + str(self._next_token)
        self._waiting[token] = pending
        try:
            await self._nc.publish(
                pending.subject, pending.payload, reply=token, headers=pending.headers
            )
        except BaseException:
            self._waiting.pop(token, None)
            raise

    async def _sweep(self) -> None:
        """Resend what waited ``resend_after`` for its PubAck; fail what waited ``ack_timeout``."""
        if self._sweeping:
            return
        self._sweeping = True
        try:
            now = time.monotonic()
            while self._waiting:
                token, pending = next(iter(self._waiting.items()))
                if now - pending.sent_at < self._resend_after:
                    break  # every later entry was sent later still
                del self._waiting[token]
                if now - pending.first_sent_at >= self._ack_timeout:
                    self._slots.release()
                    why = f" (last answer: {pending.last_error})" if pending.last_error else ""
                    self._fail(pending, f"no puback within {self._ack_timeout:g}s{why}")
                    continue
                pending.sent_at = now  # back at the end of the line, so the loop ends
                self.resent += 1
                try:
                    await self._transmit(pending)
                except (nats.errors.Error, OSError) as exc:
                    self._slots.release()
                    self._fail(pending, describe(exc))
            if not self._waiting:
                self._idle.set()
        finally:
            self._sweeping = False

    async def _on_reply(self, msg: Msg) -> None:
        pending = self._waiting.pop(msg.subject, None)
        if pending is None:
            return  # answered after a resend, a failure or close: the other answer counts
        if _no_responders(msg):
            # JetStream is not (yet) listening: keep it; a sweep resends it after resend_after.
            pending.sent_at = time.monotonic()
            pending.last_error = "no responders: no stream listens on this subject"
            self._waiting[msg.subject] = pending
            return
        error: str | None = None
        try:
            reply = json.loads(msg.data)
        except ValueError:
            error = f"unreadable puback {msg.data[:100]!r}"
        else:
            if "error" in reply:
                error = _api_error(reply["error"])
        self._slots.release()
        if not self._waiting:
            self._idle.set()
        if error is not None:
            self._fail(pending, error)
            return
        duplicate = bool(reply.get("duplicate"))
        self.published += 1
        self._unreported_acks += 1
        if duplicate:
            self.duplicates += 1
            self._unreported_duplicates += 1
        if pending.future is not None and not pending.future.done():
            pending.future.set_result(PublishAck(reply["stream"], reply["seq"], duplicate))
        if self._unreported_acks >= _REPORT_EVERY:
            self._report()

    def _fail(self, pending: _Pending, reason: str) -> None:
        failure = PublishError(pending.subject, pending.msg_id, reason)
        if pending.future is not None:
            if not pending.future.done():
                pending.future.set_exception(failure)
        elif self._failure is None:
            self._failure = failure

    def _drain_waiting(self) -> list[_Pending]:
        waiting, self._waiting = list(self._waiting.values()), {}
        for _ in waiting:
            self._slots.release()
        self._idle.set()
        return waiting

    def _report(self) -> None:
        acks, duplicates = self._unreported_acks, self._unreported_duplicates
        self._unreported_acks = self._unreported_duplicates = 0
        if acks:
            self._metrics.published.inc(acks)
        if duplicates:
            self._metrics.duplicates.inc(duplicates)

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure


def _no_responders(msg: Msg) -> bool:
    headers = msg.headers
    return bool(headers) and headers.get("Status") == _NO_RESPONDERS  # type: ignore[union-attr]


def _api_error(error: object) -> str:
    if not isinstance(error, dict):
        return str(error)
    text = str(error.get("description") or "jetstream error")
    code = error.get("err_code")
    return f"{text} (err_code {code})" if code else text
