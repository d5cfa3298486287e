"""The ingester's batch processor: rows to the writer, one outcome per message.

Poison is termed (and dead-lettered by the consumer) whatever happens to the rest of the batch;
the stored rows are acked only after the insert that holds them returned.

The same :meth:`EnvelopeProcessor.store` runs in the event loop's process (``INGESTER_WORKERS=0``)
and in a worker process (:mod:`ponix_ingester.worker`); its :class:`BatchOutcome` is small enough
to cross the pipe back, and turns into the consumer's ``ProcessingResult`` the same way in both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ponix_clickhouse import BatchWriter, InsertError
from ponix_ingester.rows import Poison, Row, RowBuilder
from ponix_nats import ACK, Nak, Outcome, ProcessingResult, Term

MSG_ID_HEADER = "Nats-Msg-Id"

M = TypeVar("M")


class _Metadata(Protocol):
    @property
    def stream(self) -> str: ...
    @property
    def sequence(self) -> _Sequence: ...


class _Sequence(Protocol):
    @property
    def stream(self) -> int: ...


class Delivery(Protocol):
    """What the processor reads of a fetched message (``nats.aio.msg.Msg`` has it)."""

    @property
    def data(self) -> bytes: ...
    @property
    def headers(self) -> dict[str, str] | None: ...
    @property
    def metadata(self) -> _Metadata: ...


def fallback_key(msg: Delivery) -> str:
    """The stable key an envelope without an id is named by: ``Nats-Msg-Id``, else stream:seq."""
    headers = msg.headers
    if headers:
        msg_id = headers.get(MSG_ID_HEADER)
        if msg_id:
            return msg_id
    meta = msg.metadata
    return f"{meta.stream}:{meta.sequence.stream}"


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of a batch of ``size`` messages: the poison among them by index, and why the
    insert of the others failed (``None``: stored)."""

    size: int
    poison: tuple[tuple[int, str, str], ...] = ()
    """``(index, code, reason)`` of each poison message."""
    failure: tuple[str, str, float | None] | None = None
    """``(code, error, retry_after)`` of a failed insert: the stored messages are nakked."""

    def result(self) -> ProcessingResult:
        if not self.poison and self.failure is None:
            return ProcessingResult.ack_all(self.size)
        stored: Outcome = ACK if self.failure is None else Nak(*self.failure)
        outcomes: list[Outcome] = [stored] * self.size
        for index, code, reason in self.poison:
            outcomes[index] = Term(code, reason)
        return ProcessingResult(outcomes)


class EnvelopeProcessor:
    """Decodes a fetched batch, hands its rows to the ``BatchWriter`` and reports outcomes."""

    def __init__(self, builder: RowBuilder, writer: BatchWriter) -> None:
        self._builder = builder
        self._writer = writer

    async def ready(self) -> None:
        """Returns when the writer accepts rows; waits out a ClickHouse outage."""
        await self._writer.ready()

    async def process(self, msgs: Sequence[Delivery]) -> ProcessingResult:
        # The key is only needed for envelopes without an id; deriving it parses headers or
        # the reply subject, so it is computed lazily inside build().
        outcome = await self.store([msg.data for msg in msgs], msgs, fallback_key)
        return outcome.result()

    async def store(
        self, payloads: Sequence[bytes], sources: Sequence[M], key_of: Callable[[M], str]
    ) -> BatchOutcome:
        """Build a row from each payload, insert them, and say what became of each;
        ``key_of(sources[i])`` names payload ``i`` if its envelope has no id."""
        rows: list[Row] = []
        nbytes = 0
        poison: list[tuple[int, str, str]] = []
        build = self._builder.build
        for index, data in enumerate(payloads):
            built = build(data, sources[index], key_of)
            if isinstance(built, Poison):
                poison.append((index, built.code, built.reason))
            else:
                rows.append(built)
                nbytes += len(data)
        failure: tuple[str, str, float | None] | None = None
        if rows:
            try:
                await self._writer.add(rows, nbytes)
            except InsertError as exc:
                failure = (exc.code, str(exc), exc.retry_after)
        return BatchOutcome(len(payloads), tuple(poison), failure)
