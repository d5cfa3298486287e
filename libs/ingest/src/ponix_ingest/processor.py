"""The envelope processor: a fetched batch's rows to the writer, one outcome per message.

The straight line (docs/architecture.md, "The data path"): the consumer pulls a batch, this
builds a row per message (``ponix_clickhouse.RowBuilder``), hands the rows to the
``BatchWriter``, and returns a ``ProcessingResult`` that the consumer settles.

* Poison (undecodable, invalid, too large, on another organization's subject) is termed and
  dead-lettered, whatever happens to the rest of the batch.
* Stored rows are acked, only after the insert that holds them returned.
* Rows ClickHouse rejected for their own content are termed with its code and message.
* The writer holds a batch through any failure of the store; only when shutdown comes first are
  the rows given back: nakked with a delay and not counted against ``NATS_MAX_DELIVER``.

``ponix audit`` builds its expectations with the same ``RowBuilder``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ponix_clickhouse import BatchWriter, Delivery, InsertError, Poison, Row, RowBuilder
from ponix_nats import ACK, Nak, Outcome, ProcessingResult, Term

ROW_REJECTED: Final = "clickhouse.row_rejected"


class EnvelopeProcessor:
    """Decodes a fetched batch, hands its rows to the ``BatchWriter`` and reports outcomes."""

    def __init__(self, builder: RowBuilder, writer: BatchWriter) -> None:
        self._builder = builder
        self._writer = writer

    @property
    def accepting(self) -> bool:
        """Whether the writer accepts rows now (:meth:`ready` would return at once)."""
        return self._writer.accepting

    async def ready(self) -> None:
        """Returns when the writer accepts rows; waits while it holds a batch."""
        await self._writer.ready()

    async def process(self, msgs: Sequence[Delivery]) -> ProcessingResult:
        rows: list[Row] = []
        nbytes = 0
        # Index of each row's message; only built once a message is poison (rare).
        sources: list[int] | None = None
        outcomes: list[Outcome] | None = None
        build = self._builder.build
        for index, msg in enumerate(msgs):
            built = build(msg)
            if type(built) is Poison:
                if outcomes is None:
                    outcomes = [ACK] * len(msgs)
                    sources = list(range(index))
                outcomes[index] = Term(built.code, built.reason)
            else:
                rows.append(built)  # type: ignore[arg-type]
                nbytes += len(msg.data)
                if sources is not None:
                    sources.append(index)
        if rows:
            try:
                rejected = await self._writer.add(rows, nbytes)
            except InsertError as exc:
                # Shutdown came while the store still failed these rows: give them back.
                nak = Nak(f"clickhouse.{exc.reason}", str(exc), exc.retry_after, counted=False)
                if outcomes is None:
                    return ProcessingResult.nak_all(
                        len(msgs), nak.code, nak.error, nak.delay, counted=False
                    )
                for position in range(len(rows)):
                    outcomes[position if sources is None else sources[position]] = nak
                return ProcessingResult(outcomes)
            if rejected:
                if outcomes is None:
                    outcomes = [ACK] * len(msgs)
                for row in rejected:
                    error = row.error
                    code = "" if error.server_code is None else f" (code {error.server_code})"
                    reason = f"{error.reason}{code}: {error.detail}"
                    position = row.index if sources is None else sources[row.index]
                    outcomes[position] = Term(ROW_REJECTED, reason)
        if outcomes is None:
            return ProcessingResult.ack_all(len(msgs))
        return ProcessingResult(outcomes)
