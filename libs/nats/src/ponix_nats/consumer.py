"""``BatchConsumer``: fetch from the durable pull consumer, hand batches to a processor, and
apply the processor's outcome to each message exactly once.

How it stays fast and bounded (DESIGN §6: nats-py's ~35 µs parse and ~10-15 µs ack per message
are the budget, everything else must nearly vanish):

* One task per *batch*, none per message. The loop fetches the next batch while earlier ones
  are still being processed (inserted).
* In flight is bounded by message count (``max_in_flight``, default the consumer's
  ``max_ack_pending``): the loop fetches at most the free room and waits while there is none.
  A processor with a ``ready()`` coroutine is awaited before each fetch (backpressure).
* An all-ack result (``ProcessingResult.ack_all``) is applied with one tight loop of sequential
  ``await msg.ack()``; each only appends to nats-py's write buffer, so gathering them as tasks
  would only add per-message task overhead. Metrics are counted per batch.
* One ticker task sends ``in_progress`` for every unresolved message of a batch older than
  ``ack_wait / 3`` (then every ``ack_wait / 3``), so a slow insert never causes a redelivery,
  and refreshes the pending gauges from ``consumer_info`` every few seconds.

Shutdown: once the token is set no new fetch starts (a fetch already waiting finishes within
``fetch_expires`` and its messages are processed), in-flight batches are awaited until their
outcomes are applied, and the connection is flushed so the acks reach the server before
``run`` returns. An in-flight batch is never abandoned (the seed's inserted-but-unacked bug).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Protocol, runtime_checkable

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
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
# A fetch that failed for a transient reason is retried after this backoff (doubling).
_RETRY_INITIAL: Final = 0.1
_RETRY_MAX: Final = 5.0
_FLUSH_TIMEOUT: Final = 5
_TERM: Final = b"+TERM"


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


class BatchConsumer:
    """Runs the fetch → process → ack/nak/term loop of one durable pull consumer.

    ``max_in_flight`` bounds the messages fetched and not yet resolved (default: the
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
        self._beat_every = settings.ack_wait / 3
        self._in_flight = 0
        self._batches: set[_Batch] = set()
        self._room = asyncio.Event()
        self._room.set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        """Messages fetched and not yet resolved."""
        return self._in_flight

    async def run(self, token: ShutdownSignal) -> None:
        """Consume until ``token`` is set, then finish the in-flight batches and return."""
        psub = await self._bind()
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
                ticker = tasks.create_task(self._tick(psub))
                await self._fetch_loop(psub, token, stop, tasks)
                await self._idle.wait()
                ticker.cancel()
        finally:
            stop.cancel()
            await self._flush()
            try:
                await psub.unsubscribe()
            except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
                log.debug("unsubscribe after consume failed", extra={"error": describe(exc)})
        log.info("consumer stopped", extra={"consumer": self._settings.consumer})

    async def _bind(self) -> JetStreamContext.PullSubscription:
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
        return await self._js.pull_subscribe_bind(durable=name, stream=stream)

    async def _fetch_loop(
        self,
        psub: JetStreamContext.PullSubscription,
        token: ShutdownSignal,
        stop: asyncio.Future[None],
        tasks: asyncio.TaskGroup,
    ) -> None:
        batch_size, expires = self._settings.batch_size, self._settings.fetch_expires
        retry = _RETRY_INITIAL
        while not token.is_set:
            if self._ready is not None and not await _unless_stopped(self._ready(), stop):
                return
            if not self._room.is_set() and not await _unless_stopped(self._room.wait(), stop):
                return
            fetched_at = time.monotonic()
            try:
                msgs = await psub.fetch(
                    min(batch_size, self._max_in_flight - self._in_flight), timeout=expires
                )
            except TimeoutError:
                continue  # nothing to fetch within fetch_expires: normal
            except nats.errors.ConnectionClosedError:
                raise NatsUnavailableError(
                    display_url(self._settings), "connection closed while consuming"
                ) from None
            except (nats.js.errors.APIError, *UNAVAILABLE_ERRORS) as exc:
                if _consumer_gone(exc):
                    raise ProvisioningError(
                        self._settings.stream,
                        [],
                        f"consumer deleted while consuming: {describe(exc)}",
                        consumer=self._settings.consumer,
                    ) from None
                log.warning(
                    "fetch failed, retrying",
                    extra={"error": describe(exc), "retry_in": retry},
                )
                if not await _unless_stopped(asyncio.sleep(retry), stop):
                    return
                retry = min(retry * 2, _RETRY_MAX)
                continue
            retry = _RETRY_INITIAL
            if not msgs:
                continue
            n = len(msgs)
            self._in_flight += n
            self._idle.clear()
            if self._in_flight >= self._max_in_flight:
                self._room.clear()
            metrics.ENVELOPES_CONSUMED.inc(n)
            tasks.create_task(self._handle(_Batch(msgs, fetched_at)))

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
            self._room.set()
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

    async def _tick(self, psub: JetStreamContext.PullSubscription) -> None:
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
                await self._refresh_gauges(psub)

    async def _refresh_gauges(self, psub: JetStreamContext.PullSubscription) -> None:
        try:
            info = await psub.consumer_info()
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


async def _beat(msgs: list[Msg]) -> None:
    for msg in msgs:
        if not msg.is_acked:
            await msg.in_progress()


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


def _consumer_gone(exc: BaseException) -> bool:
    if not isinstance(exc, nats.js.errors.APIError):
        return False
    text = (exc.description or "").lower()
    return "consumer deleted" in text or exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND)
