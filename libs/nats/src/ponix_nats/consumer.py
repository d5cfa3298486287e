"""``BatchConsumer``: pull from the durable consumer, hand batches to a processor, and apply
the processor's outcome to each message exactly once.

How it stays fast and bounded (DESIGN §6: nats-py's per-message work is the budget, everything
else must nearly vanish):

* Pulling is JetStream's own pull protocol on public client API: one inbox subscription with a
  callback, and ``CONSUMER.MSG.NEXT`` requests (``batch``, ``expires``) published to the
  consumer. nats-py's ``PullSubscription.fetch`` spends about as much per message as the rest of
  the loop together (a task, a ``wait_for`` and a uuid4 per ``next_msg``); the callback only
  appends the message to the open batch. One request is open at a time (deliveries carry the
  stream's subject, not the request's, so only then is each one known to answer it); the next
  goes out as soon as the last message of the previous one arrived.
* A batch is cut when it reaches ``batch_size`` or when the loop has drained what arrived in one
  go (``call_soon``), and handed to the processor as a task; none per message. So a trickle is
  processed at once and a backlog in large batches.
* In flight is bounded by message count (``max_in_flight``, default the consumer's
  ``max_ack_pending``): messages requested but not delivered yet, delivered and not yet cut, and
  handed to the processor and not yet resolved, together never exceed it. A processor with a
  ``ready()`` coroutine is awaited before each request (backpressure).
* An all-ack result (``ProcessingResult.ack_all``) is applied with one tight loop of sequential
  ``await msg.ack()``; each only appends to nats-py's write buffer, so gathering them as tasks
  would only add per-message task overhead. Metrics are counted per batch.
* One ticker task sends ``in_progress`` for every unresolved message of a batch older than
  ``ack_wait / 3`` (then every ``ack_wait / 3``), so a slow insert never causes a redelivery,
  and refreshes the pending gauges from ``consumer_info`` every few seconds.
* A request ends when all its messages came, or with JetStream's status message (408 at
  ``fetch_expires``, 409 ...). One lost with a connection is given up ``fetch_expires`` plus a
  grace period after it was sent, and asked again.

Shutdown: once the token is set no new request goes out; those still open end within
``fetch_expires`` and their messages are processed (there is no way to withdraw a pull request,
and a message delivered to nobody would wait out ``ack_wait`` before coming back). In-flight
batches are awaited until their outcomes are applied, and the connection is flushed so the acks
reach the server before ``run`` returns. An in-flight batch is never abandoned (the seed's
inserted-but-unacked bug).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe, display_url
from ponix_nats.dead_letter import DeadLetterPublisher
from ponix_nats.errors import NatsUnavailableError, ProvisioningError
from ponix_nats.outcome import Ack, Nak, ProcessingResult, Term, Uniform, nak_delay
from ponix_nats.provisioning import CONSUMER_NOT_FOUND, STREAM_NOT_FOUND, describe_api_error
from ponix_telemetry import metrics

log = logging.getLogger(__name__)

PROCESSOR_FAILED: Final = "processor.failed"
PROCESSOR_BAD_RESULT: Final = "processor.bad_result"
DEAD_LETTER_FAILED: Final = "nats.dead_letter_failed"
# The pending gauges cost one consumer_info request; this often is plenty for a dashboard.
GAUGE_INTERVAL: Final = 5.0
# A request that failed for a transient reason is retried after this backoff (doubling).
_RETRY_INITIAL: Final = 0.1
_RETRY_MAX: Final = 5.0
_FLUSH_TIMEOUT: Final = 5
_TERM: Final = b"+TERM"
# JetStream's API prefix (no domain: NatsSettings has none) and its status header.
_API_PREFIX: Final = "$JS.API"
_STATUS: Final = "Status"
_DESCRIPTION: Final = "Description"
_HEARTBEAT: Final = "100"
_NO_RESPONDERS: Final = "503"
# A request whose end (its last message or JetStream's 408) never came, say because the
# connection dropped, is given up this long after its expiry.
_REQUEST_GRACE: Final = 1.0


class ShutdownSignal(Protocol):
    """The runner's shutdown token, as far as the consumer needs it."""

    @property
    def is_set(self) -> bool: ...
    async def wait(self) -> None: ...


class BatchProcessor(Protocol):
    """Decides an outcome for every message of a batch (decode, insert, ...).

    ``process`` returns once each message's fate is known (for the writer: after the insert
    that holds its row returned). It may be called again before earlier calls return.
    """

    async def process(self, msgs: Sequence[Msg]) -> ProcessingResult: ...


@runtime_checkable
class BackpressureProcessor(Protocol):
    """A processor that can ask the loop to wait before fetching more (store outage)."""

    async def ready(self) -> None: ...


class _Batch:
    """An in-flight batch: its messages and when it last proved to the server it is alive."""

    __slots__ = ("last_beat", "msgs")

    def __init__(self, msgs: list[Msg], fetched_at: float) -> None:
        self.msgs = msgs
        self.last_beat = fetched_at


class _Request:
    """The open pull request: its reply subject (where JetStream's status about it comes), the
    messages still to come, and when we stop waiting for its end."""

    __slots__ = ("give_up_at", "remaining", "reply")

    def __init__(self, reply: str, remaining: int, give_up_at: float) -> None:
        self.reply = reply
        self.remaining = remaining
        self.give_up_at = give_up_at


class BatchConsumer:
    """Runs the pull → process → ack/nak/term loop of one durable pull consumer.

    ``max_in_flight`` bounds the messages requested and not yet resolved (default: the
    consumer's ``max_ack_pending``). ``dead_letters`` defaults to a publisher on ``js``.
    """

    def __init__(
        self,
        nc: Client,
        settings: NatsSettings,
        processor: BatchProcessor,
        *,
        dead_letters: DeadLetterPublisher | None = None,
        max_in_flight: int | None = None,
        js: JetStreamContext | None = None,
    ) -> None:
        self._nc = nc
        self._js = js if js is not None else nc.jetstream()
        self._settings = settings
        self._processor = processor
        self._ready: Callable[[], Coroutine[Any, Any, None]] | None = (
            processor.ready if isinstance(processor, BackpressureProcessor) else None
        )
        self._dead_letters = dead_letters or DeadLetterPublisher(self._js, settings)
        self._max_in_flight = max_in_flight or settings.max_ack_pending
        if self._max_in_flight < 1:
            msg = "max_in_flight must be at least 1"
            raise ValueError(msg)
        self._batch_size = min(settings.batch_size, self._max_in_flight)
        self._beat_every = settings.ack_wait / 3
        self._next_subject = (
            f"{_API_PREFIX}.CONSUMER.MSG.NEXT.{settings.stream}.{settings.consumer}"
        )
        self._in_flight = 0
        self._batches: set[_Batch] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Pulling: open requests by reply subject, the messages they still owe (credits), and
        # the batch being filled.
        self._inbox = ""
        self._request_count = 0
        self._request: _Request | None = None
        self._buffer: list[Msg] = []
        self._buffer_since = 0.0
        self._cut_pending = False
        self._wake = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._fatal: BaseException | None = None
        self._request_failed: str | None = None

    @property
    def in_flight(self) -> int:
        """Messages delivered and not yet resolved."""
        return self._in_flight

    async def run(self, token: ShutdownSignal) -> None:
        """Consume until ``token`` is set, then finish the in-flight batches and return."""
        await self._check_consumer()
        self._inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(
            self._inbox + ".*",
            cb=self._on_msg,
            # Bounded by max_in_flight already; nats-py's own limits would drop messages.
            pending_msgs_limit=self._max_in_flight + 1024,
            pending_bytes_limit=-1,
        )
        stop = asyncio.ensure_future(token.wait())
        log.info(
            "consumer started",
            extra={
                "stream": self._settings.stream,
                "consumer": self._settings.consumer,
                "batch_size": self._settings.batch_size,
                "max_in_flight": self._max_in_flight,
            },
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                ticker = tasks.create_task(self._tick())
                await self._pull_loop(token, stop)
                await self._drain_requests()
                self._cut()
                await self._idle.wait()
                ticker.cancel()
        except BaseExceptionGroup as group:
            # The pull loop's own error (batch tasks and the ticker keep theirs): raised as
            # itself, so a deleted consumer or a closed connection keeps its one-line code.
            # Several tasks can see the same cause at once (a deleted consumer fails the pull
            # loop and the ticker): the first is the reason, the others ride along as notes.
            first = group.exceptions[0]
            for other in group.exceptions[1:]:
                first.add_note(f"also: {type(other).__name__}: {other}")
            raise first from None
        finally:
            self._tasks = None
            stop.cancel()
            await self._flush()
            await _unsubscribe(sub)
        log.info("consumer stopped", extra={"consumer": self._settings.consumer})

    async def _check_consumer(self) -> None:
        stream, name = self._settings.stream, self._settings.consumer
        try:
            await self._js.consumer_info(stream, name)
        except nats.js.errors.NotFoundError as exc:
            if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                reason = f"missing ({describe_api_error(exc)}); run ensure_jetstream first"
                raise ProvisioningError(stream, [], reason, consumer=name) from None
            raise
        except UNAVAILABLE_ERRORS as exc:
            raise NatsUnavailableError(display_url(self._settings), describe(exc)) from None

    # -- requesting -----------------------------------------------------------------------------

    def _wanted(self) -> int:
        """How many messages to ask for now (0: wait): one request open at a time, so every
        delivery belongs to it (JetStream delivers on the stream's subjects, not the reply
        subject, so messages cannot say which request they answer)."""
        if self._request is not None:
            return 0
        room = self._max_in_flight - self._in_flight - len(self._buffer)
        return max(0, min(self._batch_size, room))

    async def _pull_loop(self, token: ShutdownSignal, stop: asyncio.Future[None]) -> None:
        retry = _RETRY_INITIAL
        expires = self._settings.fetch_expires
        while not token.is_set:
            if self._fatal is not None:
                raise self._fatal
            if self._request_failed is not None:
                log.warning(
                    "fetch failed, retrying",
                    extra={"error": self._request_failed, "retry_in": retry},
                )
                self._request_failed = None
                if not await _unless_stopped(asyncio.sleep(retry), stop):
                    return
                retry = min(retry * 2, _RETRY_MAX)
                continue
            if self._ready is not None and not await _unless_stopped(self._ready(), stop):
                return
            self._give_up_lost_request()
            wanted = self._wanted()
            if not wanted:
                self._wake.clear()
                if not await _unless_stopped(self._sleep_until_woken(), stop):
                    return
                continue
            if self._nc.is_closed:
                raise NatsUnavailableError(
                    display_url(self._settings), "connection closed while consuming"
                )
            self._request_count += 1
            reply = f"{self._inbox}.{self._request_count}"
            request = {"batch": wanted, "expires": int(expires * 1_000_000_000)}
            self._request = _Request(reply, wanted, time.monotonic() + expires + _REQUEST_GRACE)
            try:
                await self._nc.publish(
                    self._next_subject, json.dumps(request).encode(), reply=reply
                )
            except nats.errors.ConnectionClosedError:
                raise NatsUnavailableError(
                    display_url(self._settings), "connection closed while consuming"
                ) from None
            except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
                self._end_request()
                self._request_failed = describe(exc)
                continue
            retry = _RETRY_INITIAL

    async def _sleep_until_woken(self) -> None:
        """Until a delivery, the request's end or a resolved batch may allow a new request, or
        until the open request is due to be given up."""
        if self._request is None:
            await self._wake.wait()
            return
        due = self._request.give_up_at - time.monotonic()
        if due <= 0:
            return
        try:
            async with asyncio.timeout(due):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _give_up_lost_request(self) -> None:
        request = self._request
        if request is not None and request.give_up_at <= time.monotonic():
            log.debug("pull request never ended; asking again", extra={"reply": request.reply})
            self._end_request()

    def _end_request(self) -> None:
        self._request = None
        self._wake.set()

    async def _drain_requests(self) -> None:
        """Shutdown: wait until the open request ended (by ``fetch_expires`` + grace)."""
        while self._request is not None and self._fatal is None:
            self._give_up_lost_request()
            self._wake.clear()
            await self._sleep_until_woken()

    # -- receiving ------------------------------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        """The inbox subscription's callback: one message of some request, or its status."""
        if not msg.reply:
            self._on_status(msg)
            return
        request = self._request
        if request is not None:
            request.remaining -= 1
            if request.remaining <= 0:
                self._end_request()
        buffer = self._buffer
        buffer.append(msg)
        if len(buffer) >= self._batch_size:
            self._cut()
        elif not self._cut_pending:
            # Cut once the loop has handled everything that arrived with this message.
            self._cut_pending = True
            self._buffer_since = time.monotonic()
            asyncio.get_running_loop().call_soon(self._cut_soon)

    def _on_status(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get(_STATUS)
        request = self._request
        if (
            status is None
            or status == _HEARTBEAT
            or request is None
            or msg.subject != request.reply
        ):
            return  # a heartbeat, or the end of a request already given up
        self._end_request()
        description = headers.get(_DESCRIPTION, "")
        if status == _NO_RESPONDERS:
            self._request_failed = "jetstream not responding (no responders)"
        elif "consumer deleted" in description.lower():
            self._fatal = ProvisioningError(
                self._settings.stream,
                [],
                f"consumer deleted while consuming: {status} {description}",
                consumer=self._settings.consumer,
            )
        elif status not in ("404", "408", "409"):
            self._request_failed = f"{status} {description}".strip()
        elif status == "409":
            log.debug("pull request ended", extra={"status": status, "reason": description})

    def _cut_soon(self) -> None:
        self._cut_pending = False
        self._cut()

    def _cut(self) -> None:
        msgs = self._buffer
        if not msgs:
            return
        self._buffer = []
        tasks = self._tasks
        if tasks is None:
            # Delivered after run() ended (a request the server kept past its expiry): they
            # come back after ack_wait.
            log.debug("late delivery after shutdown", extra={"messages": len(msgs)})
            return
        n = len(msgs)
        self._in_flight += n
        self._idle.clear()
        metrics.ENVELOPES_CONSUMED.inc(n)
        tasks.create_task(self._handle(_Batch(msgs, self._buffer_since or time.monotonic())))

    # -- outcomes -------------------------------------------------------------------------------

    async def _handle(self, batch: _Batch) -> None:
        msgs = batch.msgs
        self._batches.add(batch)
        try:
            try:
                result = await self._processor.process(msgs)
                if len(result.outcomes) != len(msgs):
                    log.error(
                        "processor returned the wrong number of outcomes",
                        extra={"messages": len(msgs), "outcomes": len(result.outcomes)},
                    )
                    result = ProcessingResult.nak_all(
                        len(msgs),
                        PROCESSOR_BAD_RESULT,
                        f"{len(result.outcomes)} outcomes for {len(msgs)} messages",
                    )
            except Exception as exc:
                log.exception(
                    "processor failed, nakking the batch",
                    extra={"messages": len(msgs), "error": describe(exc)},
                )
                result = ProcessingResult.nak_all(len(msgs), PROCESSOR_FAILED, describe(exc))
            await self._apply(msgs, result)
        except Exception as exc:  # noqa: BLE001 - only the connection fails here
            # Unresolved messages come back after ack_wait; one line per batch is enough.
            log.error(
                "applying outcomes failed",
                extra={"messages": len(msgs), "error": describe(exc)},
            )
        finally:
            self._batches.discard(batch)
            self._in_flight -= len(msgs)
            self._wake.set()
            if self._in_flight == 0:
                self._idle.set()

    async def _apply(self, msgs: list[Msg], result: ProcessingResult) -> None:
        outcomes = result.outcomes
        if type(outcomes) is Uniform and type(outcomes.outcome) is Ack:
            for msg in msgs:
                await msg.ack()
            metrics.ENVELOPES_ACKED.inc(len(msgs))
            return
        settings = self._settings
        acked = 0
        nakked: dict[str, int] = {}
        doomed: list[tuple[Msg, str, str]] = []
        for msg, outcome in zip(msgs, outcomes, strict=True):
            kind = type(outcome)
            if kind is Ack:
                await msg.ack()
                acked += 1
            elif kind is Nak:
                assert isinstance(outcome, Nak)
                deliveries = msg.metadata.num_delivered
                if deliveries >= settings.max_deliver:
                    doomed.append((msg, outcome.code, f"max_deliver reached: {outcome.error}"))
                    continue
                delay = outcome.delay
                if delay is None:
                    delay = nak_delay(
                        deliveries, settings.nak_delay_initial, settings.nak_delay_max
                    )
                await msg.nak(delay=delay)
                nakked[outcome.code] = nakked.get(outcome.code, 0) + 1
            else:
                assert isinstance(outcome, Term)
                doomed.append((msg, outcome.code, outcome.reason))
        if doomed:
            await self._dead_letter(doomed, nakked)
        if acked:
            metrics.ENVELOPES_ACKED.inc(acked)
        for code, count in nakked.items():
            metrics.ENVELOPES_NAKKED.labels(code=code).inc(count)

    async def _dead_letter(
        self, doomed: list[tuple[Msg, str, str]], nakked: dict[str, int]
    ) -> None:
        """DLQ copy first, term second: a message is never termed without its copy stored.
        A copy that failed is nakked with backoff instead, so it comes back and tries again."""
        settings = self._settings
        errors = await self._dead_letters.publish_many(doomed)
        termed: dict[str, int] = {}
        failed = 0
        for (msg, code, reason), error in zip(doomed, errors, strict=True):
            if error is None:
                # +TERM with a reason (nats-server >= 2.10.4 puts it in the advisory); nats-py
                # 2.16's Msg.term() takes none, so the same protocol line goes out by publish.
                await self._nc.publish(msg.reply, _TERM + b" " + reason.encode()[:512])
                termed[code] = termed.get(code, 0) + 1
            else:
                failed += 1
                delay = nak_delay(
                    msg.metadata.num_delivered, settings.nak_delay_initial, settings.nak_delay_max
                )
                await msg.nak(delay=delay)
                nakked[DEAD_LETTER_FAILED] = nakked.get(DEAD_LETTER_FAILED, 0) + 1
        for code, count in termed.items():
            metrics.ENVELOPES_TERMINATED.labels(code=code).inc(count)
            metrics.ENVELOPES_DEAD_LETTERED.labels(code=code).inc(count)
        if failed:
            first = next(e for e in errors if e is not None)
            log.error(
                "dead-letter copy failed, nakked instead of termed",
                extra={"messages": failed, "error": str(first)},
            )

    async def _tick(self) -> None:
        period = min(self._beat_every / 2, GAUGE_INTERVAL)
        next_gauges = 0.0
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for batch in list(self._batches):
                if now - batch.last_beat >= self._beat_every:
                    batch.last_beat = now
                    await _beat(batch.msgs)
            if now >= next_gauges:
                next_gauges = now + GAUGE_INTERVAL
                await self._refresh_gauges()

    async def _refresh_gauges(self) -> None:
        try:
            info = await self._js.consumer_info(self._settings.stream, self._settings.consumer)
        except (nats.js.errors.APIError, *UNAVAILABLE_ERRORS) as exc:
            log.debug("consumer info for gauges failed", extra={"error": describe(exc)})
            return
        if info.num_pending is not None:
            metrics.CONSUMER_PENDING.set(info.num_pending)
        if info.num_ack_pending is not None:
            metrics.CONSUMER_ACK_PENDING.set(info.num_ack_pending)

    async def _flush(self) -> None:
        if not self._nc.is_connected:
            return
        try:
            await self._nc.flush(timeout=_FLUSH_TIMEOUT)
        except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
            log.warning("flushing acks failed", extra={"error": describe(exc)})


async def _unsubscribe(sub: Subscription) -> None:
    try:
        await sub.unsubscribe()
    except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
        log.debug("unsubscribe after consume failed", extra={"error": describe(exc)})


async def _beat(msgs: list[Msg]) -> None:
    try:
        for msg in msgs:
            if not msg.is_acked:
                await msg.in_progress()
    except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
        # The connection is down: the next tick tries again, ack_wait permitting.
        log.debug("in_progress failed", extra={"error": describe(exc)})


async def _unless_stopped(work: Coroutine[Any, Any, Any], stop: asyncio.Future[None]) -> bool:
    """Run ``work`` unless shutdown comes first; True when ``work`` finished."""
    if stop.done():
        work.close()
        return False
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
        return True
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled() and task.exception() is not None:
        log.debug("abandoned wait failed", extra={"error": describe(task.exception())})  # type: ignore[arg-type]
    return False
