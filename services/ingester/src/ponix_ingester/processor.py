"""The ingester's batch processor: rows to the writer, one outcome per message.

Poison is termed (and dead-lettered by the consumer) whatever happens to the rest of the batch;
the stored rows are acked only after the insert that holds them returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ponix_clickhouse import BatchWriter, InsertError
from ponix_ingester.rows import Poison, Row, RowBuilder
from ponix_nats import ACK, Nak, Outcome, ProcessingResult, Term

MSG_ID_HEADER = "Nats-Msg-Id"


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


class EnvelopeProcessor:
    """Decodes a fetched batch, hands its rows to the ``BatchWriter`` and reports outcomes."""

    def __init__(self, builder: RowBuilder, writer: BatchWriter) -> None:
        self._builder = builder
        self._writer = writer

    async def ready(self) -> None:
        """Returns when the writer accepts rows; waits out a ClickHouse outage."""
        await self._writer.ready()

    async def process(self, msgs: Sequence[Delivery]) -> ProcessingResult:
        rows: list[Row] = []
        nbytes = 0
        poison: list[tuple[int, Poison]] = []
        build = self._builder.build
        for index, msg in enumerate(msgs):
            data = msg.data
            # The key is only needed for envelopes without an id; deriving it parses headers
            # or the reply subject, so it is computed lazily inside build().
            built = build(data, msg, fallback_key)
            if isinstance(built, Poison):
                poison.append((index, built))
            else:
                rows.append(built)
                nbytes += len(data)
        failure: InsertError | None = None
        if rows:
            try:
                await self._writer.add(rows, nbytes)
            except InsertError as exc:
                failure = exc
        if not poison and failure is None:
            return ProcessingResult.ack_all(len(msgs))
        stored: Outcome = ACK
        if failure is not None:
            stored = Nak(failure.code, str(failure), failure.retry_after)
        outcomes: list[Outcome] = [stored] * len(msgs)
        for index, bad in poison:
            outcomes[index] = Term(bad.code, bad.reason)
        return ProcessingResult(outcomes)
