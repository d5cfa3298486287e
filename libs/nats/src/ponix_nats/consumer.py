"""``BatchConsumer``: the loop of one durable pull consumer. It asks for messages
(:mod:`ponix_nats.pull`), cuts them into batches, hands each batch to the processor as a task,
and settles the processor's outcomes (:mod:`ponix_nats.settle`).

How it stays fast and bounded (docs/architecture.md, "The data path"):

* A batch is cut when it reaches ``batch_size`` or when the loop has drained what arrived in one
  go (``call_soon``); none per message. So a trickle is processed at once and a backlog in
  large batches. The next request goes out as soon as the previous one ended, from the delivery
  callback itself (``_refill``), before the batch just cut is decoded: fetching overlaps the
  decoding and the inserts.
* In flight is bounded by message count (``max_in_flight``, default the consumer's
  ``max_ack_pending``) and by payload bytes (``max_in_flight_bytes``): messages requested,
  delivered and not cut yet, or handed to the processor and not settled, together never exceed
  either (but for one message larger than the byte bound). Each request carries ``max_bytes``.
  A processor with a ``ready()`` coroutine is awaited before each request (backpressure: the
  writer holds a batch while the store refuses it).
* One ticker sends ``in_progress`` for every unsettled message of a batch older than
  ``ack_wait / 3`` (then every ``ack_wait / 3``), so a slow or held insert never causes a
  redelivery, and refreshes the pending gauges every few seconds.

Metrics are counted per batch, on label children bound when the consumer is made. The end-to-end
lag (publish to stored) is sampled: reading a message's JetStream timestamp parses its reply
subject, so only the first and the last message of each batch are measured, once the processor
has stored them.

Shutdown: once the token is set no new request goes out; the open one ends within
``fetch_expires`` and its messages are processed. In-flight batches are awaited until their
outcomes are settled, and the connection is flushed so the acks reach the server before ``run``
returns. An in-flight batch is never abandoned (the seed's inserted-but-unacked bug).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
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
from ponix_nats.lookup import CONSUMER_NOT_FOUND, STREAM_NOT_FOUND, describe_api_error
from ponix_nats.outcome import Ack, ProcessingResult
from ponix_nats.pull import PullRequests
from ponix_nats.settle import DeadLetters, Settled, SettlePolicy, keep_alive, settle
from ponix_runner import Backoff, ShutdownSignal
from ponix_telemetry import metrics

__all__ = (
    "PROCESSOR_FAILED",
    "BackpressureProcessor",
    "BatchConsumer",
    "BatchProcessor",
    "decide",
)

log = logging.getLogger(__name__)

PROCESSOR_FAILED: Final = "processor.failed"
# The gauges cost a consumer_info and a DLQ stream_info request; this often is plenty for a
# dashboard.
GAUGE_INTERVAL: Final = 5.0
# A request that failed for a transient reason is retried after this backoff.
_REQUEST_RETRY: Final = Backoff(initial=0.1, maximum=5.0, jitter=0.2)
_FLUSH_TIMEOUT: Final = 5
# A request's max_bytes also counts each message's subject and headers; this much room above the
# largest payload the stream accepts keeps such a message deliverable.
_MESSAGE_OVERHEAD: Final = 64 * 1024


class BatchProcessor(Protocol):
    """Decides an outcome for every message of a batch (decode, insert, ...).

    ``process`` returns once each message's fate is known (for the writer: after the insert
    that holds its row returned). It may be called again before earlier calls return.
    """

    async def process(self, msgs: Sequence[Msg]) -> ProcessingResult: ...


@runtime_checkable
class BackpressureProcessor(Protocol):
    """A processor that can ask the loop to wait before fetching more (store outage)."""

    @property
    def accepting(self) -> bool:
        """Whether ``ready()`` would return at once."""
        ...

    async def ready(self) -> None: ...


class _Batch:
    """An in-flight batch: its messages, their bytes, and when it last proved to the server
    that it is alive."""

    __slots__ = ("last_beat", "msgs", "nbytes")

    def __init__(self, msgs: list[Msg], nbytes: int, fetched_at: float) -> None:
        self.msgs = msgs
        self.nbytes = nbytes
        self.last_beat = fetched_at


class BatchConsumer:
    """Runs the pull → process → settle loop of one durable pull consumer."""

    def __init__(
        self,
        nc: Client,
        settings: NatsSettings,
        processor: BatchProcessor,
        *,
        dead_letters: DeadLetters | None = None,
        max_in_flight: int | None = None,
        max_in_flight_bytes: int = 64 * 1024 * 1024,
        js: JetStreamContext | None = None,
    ) -> None:
        self._nc = nc
        self._js = js if js is not None else nc.jetstream()
        self._settings = settings
        self._processor = processor
        self._backpressure = processor if isinstance(processor, BackpressureProcessor) else None
        self._dead_letters = dead_letters or DeadLetterPublisher(
            self._js, settings, max_payload=lambda: nc.max_payload
        )
        self._policy = SettlePolicy.from_settings(settings)
        self._metrics = metrics.ConsumerMetrics(
            settings.stream, settings.consumer, settings.dlq_stream
        )
        self._max_in_flight = max_in_flight or settings.max_ack_pending
        if self._max_in_flight < 1 or max_in_flight_bytes < 1:
            msg = "max_in_flight and max_in_flight_bytes must be at least 1"
            raise ValueError(msg)
        self._max_bytes = max_in_flight_bytes
        self._message_bytes = settings.max_msg_size + _MESSAGE_OVERHEAD
        self._batch_size = min(settings.batch_size, self._max_in_flight)
        self._beat_every = settings.ack_wait / 3
        self._pull = PullRequests(
            nc,
            settings,
            self._on_msg,
            pending_limit=self._max_in_flight + 1024,
            refill=self._refill,
        )
        self._token: ShutdownSignal | None = None
        # Delivered and not settled: handed to the processor, or in the batch being filled.
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._buffer: list[Msg] = []
        self._buffer_bytes = 0
        self._buffer_since = 0.0
        self._cut_pending = False
        self._batches: set[_Batch] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: asyncio.TaskGroup | None = None

    @property
    def in_flight(self) -> int:
        """Messages delivered and not yet settled."""
        return self._in_flight + len(self._buffer)

    @property
    def in_flight_bytes(self) -> int:
        """Payload bytes of the messages delivered and not yet settled."""
        return self._in_flight_bytes + self._buffer_bytes

    async def run(self, token: ShutdownSignal) -> None:
        """Consume until ``token`` is set, then finish the in-flight batches and return."""
        await self._check_consumer()
        self._token = token
        await self._pull.start()
        stop = asyncio.ensure_future(token.wait())
        log.info(
            "consumer started",
            extra={
                "stream": self._settings.stream,
                "consumer": self._settings.consumer,
                "batch_size": self._settings.batch_size,
                "max_in_flight": self._max_in_flight,
                "max_in_flight_bytes": self._max_bytes,
            },
        )
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                ticker = tasks.create_task(self._tick())
                await self._pull_loop(token, stop)
                await self._pull.drain()
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
            await self._pull.stop()
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

    # -- asking -----------------------------------------------------------------------------------

    def _wanted(self) -> tuple[int, int]:
        """How many messages, and how many bytes, to ask for now ((0, 0): wait)."""
        if self._pull.open:
            return 0, 0
        count = self.in_flight
        room = self._max_in_flight - count
        room_bytes = self._max_bytes - self.in_flight_bytes
        if room <= 0 or (count and room_bytes < self._message_bytes):
            return 0, 0
        return min(self._batch_size, room), max(room_bytes, self._message_bytes)

    async def _pull_loop(self, token: ShutdownSignal, stop: asyncio.Future[None]) -> None:
        pull = self._pull
        failures = 0
        while not token.is_set:
            if pull.fatal is not None:
                raise pull.fatal
            if pull.failed is not None:
                failures += 1
                delay = _REQUEST_RETRY.delay(failures)
                log.warning(
                    "fetch failed, retrying",
                    extra={"error": pull.failed, "retry_in": round(delay, 2)},
                )
                pull.failed = None
                if not await _unless_stopped(asyncio.sleep(delay), stop):
                    return
                continue
            backpressure = self._backpressure
            if backpressure is not None and not await _unless_stopped(backpressure.ready(), stop):
                return
            batch, max_bytes = self._wanted()
            if not batch:
                pull.changed.clear()
                if not await _unless_stopped(pull.wait_changed(), stop):
                    return
                continue
            await pull.request(batch, max_bytes)
            if pull.failed is None:
                failures = 0

    async def _refill(self) -> None:
        """The next request, from the delivery callback as soon as the last one ended (see
        :mod:`ponix_nats.pull`), when nothing calls for the loop's care: no shutdown, no failed
        request, a processor that accepts rows. Otherwise the loop decides, as always."""
        pull = self._pull
        backpressure = self._backpressure
        token = self._token
        if (
            token is None
            or token.is_set
            or pull.failed is not None
            or pull.fatal is not None
            or (backpressure is not None and not backpressure.accepting)
        ):
            return
        batch, max_bytes = self._wanted()
        if batch:
            with contextlib.suppress(NatsUnavailableError):  # the loop's next request raises it
                await pull.request(batch, max_bytes)

    # -- receiving and cutting ------------------------------------------------------------------

    def _on_msg(self, msg: Msg) -> None:
        buffer = self._buffer
        buffer.append(msg)
        self._buffer_bytes += len(msg.data)
        if len(buffer) >= self._batch_size:
            self._cut()
        elif not self._cut_pending:
            # Cut once the loop has handled everything that arrived with this message.
            self._cut_pending = True
            self._buffer_since = time.monotonic()
            asyncio.get_running_loop().call_soon(self._cut_soon)

    def _cut_soon(self) -> None:
        self._cut_pending = False
        self._cut()

    def _cut(self) -> None:
        msgs, nbytes = self._buffer, self._buffer_bytes
        if not msgs:
            return
        self._buffer = []
        self._buffer_bytes = 0
        tasks = self._tasks
        if tasks is None:
            # Delivered after run() ended (a request the server kept past its expiry): they
            # come back after ack_wait.
            log.debug("late delivery after shutdown", extra={"messages": len(msgs)})
            return
        self._in_flight += len(msgs)
        self._in_flight_bytes += nbytes
        self._idle.clear()
        self._metrics.consumed.inc(len(msgs))
        self._metrics.consumed_bytes.inc(nbytes)
        batch = _Batch(msgs, nbytes, self._buffer_since or time.monotonic())
        tasks.create_task(self._handle(batch))

    # -- processing and settling ----------------------------------------------------------------

    async def _handle(self, batch: _Batch) -> None:
        msgs = batch.msgs
        self._batches.add(batch)
        try:
            # One turn of the loop first: the flusher then writes the request the delivery
            # callback just queued (``_refill``) before this batch's decoding holds the loop.
            await asyncio.sleep(0)
            result = await decide(self._processor, msgs)
            self._observe_lag(msgs, result)
            settled = await settle(msgs, result, self._policy, self._dead_letters, self._nc)
            self._count(settled)
        except Exception as exc:  # noqa: BLE001 - only the connection fails here
            # Unsettled messages come back after ack_wait; one line per batch is enough.
            log.error(
                "settling outcomes failed",
                extra={"messages": len(msgs), "error": describe(exc)},
            )
        finally:
            self._batches.discard(batch)
            self._in_flight -= len(msgs)
            self._in_flight_bytes -= batch.nbytes
            self._pull.changed.set()
            if self._in_flight == 0:
                self._idle.set()

    def _observe_lag(self, msgs: list[Msg], result: ProcessingResult) -> None:
        """Publish-to-stored time of the batch's first and last message, when stored."""
        outcomes = result.outcomes
        stored_at = datetime.now(UTC)  # wall clock: compared with the server's timestamp
        for index in {0, len(msgs) - 1}:
            if type(outcomes[index]) is not Ack:
                continue
            try:
                published_at = msgs[index].metadata.timestamp
            except (nats.errors.NotJSMessageError, ValueError):
                continue  # not from JetStream (a test's message): nothing to measure
            lag = (stored_at - published_at).total_seconds()
            self._metrics.lag.observe(max(lag, 0.0))

    def _count(self, settled: Settled) -> None:
        counters = self._metrics
        if settled.acked:
            counters.acked.inc(settled.acked)
        for code, count in settled.nakked.items():
            counters.nakked(code).inc(count)
        for code, count in settled.termed.items():
            counters.terminated(code).inc(count)
            counters.dead_lettered(code).inc(count)

    async def _tick(self) -> None:
        period = min(self._beat_every / 2, GAUGE_INTERVAL)
        next_gauges = 0.0
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for batch in list(self._batches):
                if now - batch.last_beat >= self._beat_every:
                    batch.last_beat = now
                    await keep_alive(batch.msgs)
            self._metrics.in_flight_bytes.set(self.in_flight_bytes)
            if now >= next_gauges:
                next_gauges = now + GAUGE_INTERVAL
                await self._refresh_gauges()

    async def _refresh_gauges(self) -> None:
        gauges = self._metrics
        try:
            info = await self._js.consumer_info(self._settings.stream, self._settings.consumer)
            if info.num_pending is not None:
                gauges.pending.set(info.num_pending)
            if info.num_ack_pending is not None:
                gauges.ack_pending.set(info.num_ack_pending)
            dead_letters = await self._js.stream_info(self._settings.dlq_stream)
            gauges.dead_letters.set(dead_letters.state.messages)
        except (nats.js.errors.APIError, *UNAVAILABLE_ERRORS) as exc:
            log.debug("stream info for gauges failed", extra={"error": describe(exc)})

    async def _flush(self) -> None:
        if not self._nc.is_connected:
            return
        try:
            await self._nc.flush(timeout=_FLUSH_TIMEOUT)
        except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
            log.warning("flushing acks failed", extra={"error": describe(exc)})


async def decide(processor: BatchProcessor, msgs: Sequence[Msg]) -> ProcessingResult:
    """The processor's outcomes for ``msgs``; a processor that fails, or answers with the wrong
    number of outcomes, naks the batch. Such a nak is counted: a message that crashes the
    processor on every delivery is dead-lettered once ``max_deliver`` is reached."""
    try:
        result = await processor.process(msgs)
        if len(result.outcomes) != len(msgs):
            detail = f"{len(result.outcomes)} outcomes for {len(msgs)} messages"
            raise ValueError(detail)
    except Exception as exc:
        log.exception(
            "processor failed, nakking the batch",
            extra={"messages": len(msgs), "error": describe(exc)},
        )
        return ProcessingResult.nak_all(len(msgs), PROCESSOR_FAILED, describe(exc))
    return result


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
