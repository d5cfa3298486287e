"""The fault suite's oracle: after a drain, was anything lost, visibly duplicated or misrouted?

Inputs:

* the publisher's **ledger**: the ids JetStream acknowledged (PubAck), valid envelopes and poison
  separately. An id whose publish was never acknowledged is not promised and not counted;
* the **exact read** of the table: ``SELECT id, count() ... FINAL GROUP BY id``, what a user sees;
* the **dead-letter stream**: the original ``Nats-Msg-Id`` of every dead letter.

Figures:

* ``lost`` = valid ledger ids with no row (a valid envelope dead-lettered is lost too);
* ``duplicated`` = rows of the exact read minus distinct ids (FINAL collapses same-key rows, so
  a redelivery that was inserted twice is not a duplicate; a second row under another sorting
  key is);
* ``unexpected`` = stored ids that were never PubAck'd as valid (poison stored, strays);
* ``dlq_missing`` = poison ids with no dead letter; ``dlq_unexpected`` = dead letters that are
  not poison.

Call :func:`judge` only after a drain (``PipelineClient.wait_until_drained``): consumer pending 0
and ack-pending 0 mean every delivered message was acked (its insert had returned) or termed
(its copy was stored).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from clickhouse_driver import Client
from nats.js import JetStreamContext

from ponix_clickhouse import qualified_name
from ponix_config import NatsSettings
from ponix_nats import list_dead_letters


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the oracle found; ``clean`` is the promise kept."""

    published: int
    poison_published: int
    rows: int
    stored: int
    lost: tuple[str, ...]
    duplicated: int
    unexpected: tuple[str, ...]
    dead_lettered: int
    dlq_missing: tuple[str, ...]
    dlq_unexpected: tuple[str, ...]
    duplicated_ids: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.dlq_missing
            or self.dlq_unexpected
        )

    def summary(self) -> str:
        return (
            f"published={self.published} poison={self.poison_published} rows={self.rows} "
            f"stored={self.stored} lost={len(self.lost)} duplicated={self.duplicated} "
            f"unexpected={len(self.unexpected)} dlq={self.dead_lettered} "
            f"dlq_missing={len(self.dlq_missing)} dlq_unexpected={len(self.dlq_unexpected)}"
            + (f" first lost={list(self.lost[:5])}" if self.lost else "")
            + (f" first duplicated={list(self.duplicated_ids[:5])}" if self.duplicated else "")
            + (f" first dlq_missing={list(self.dlq_missing[:5])}" if self.dlq_missing else "")
        )


def judge(
    ledger: Iterable[str],
    rows_per_id: Mapping[str, int],
    *,
    poison: Iterable[str] = (),
    dead_letters: Iterable[str] = (),
) -> Verdict:
    """The figures from the three inputs (pure: no server involved)."""
    valid = set(ledger)
    poison_ids = set(poison)
    dlq = list(dead_letters)
    dlq_ids = set(dlq)
    stored = set(rows_per_id)
    rows = sum(rows_per_id.values())
    return Verdict(
        published=len(valid),
        poison_published=len(poison_ids),
        rows=rows,
        stored=len(stored),
        lost=tuple(sorted(valid - stored)),
        duplicated=rows - len(stored),
        unexpected=tuple(sorted(stored - valid)),
        dead_lettered=len(dlq),
        dlq_missing=tuple(sorted(poison_ids - dlq_ids)),
        dlq_unexpected=tuple(sorted(dlq_ids - poison_ids)),
        duplicated_ids=tuple(sorted(i for i, n in rows_per_id.items() if n > 1)),
    )


def exact_rows(client: Client, database: str, table: str) -> dict[str, int]:
    """Rows per id as a user's exact read sees them (``FINAL``); blocks."""
    rows = client.execute(
        f"SELECT id, count() FROM {qualified_name(database, table)} FINAL GROUP BY id"
    )
    return {str(envelope_id): int(count) for envelope_id, count in rows}


async def dead_letter_ids(js: JetStreamContext, settings: NatsSettings) -> list[str]:
    """The original ``Nats-Msg-Id`` of every dead letter (its DLQ sequence when it had none)."""
    out: list[str] = []
    start = 1
    while True:
        letters = await list_dead_letters(js, settings, 500, start_seq=start)
        if not letters:
            return out
        out.extend(letter.msg_id or f"dlq-seq:{letter.dlq_seq}" for letter in letters)
        start = letters[-1].dlq_seq + 1
