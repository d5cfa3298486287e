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
* ``mismatched`` = stored ids whose row (id, organization, device, both timestamps, data) is not
  what the published envelope says, decoded here with Google's ``json_format`` (not the
  ingester's code) and cut to the table's time precision;
* ``dlq_missing`` = poison ids with no dead letter; ``dlq_unexpected`` = dead letters that are
  not poison.

Call :func:`judge` only after a drain (``PipelineClient.wait_until_drained``): consumer pending 0
and ack-pending 0 mean every delivered message was acked (its insert had returned) or termed
(its copy was stored).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from clickhouse_driver import Client
from google.protobuf import json_format
from nats.js import JetStreamContext

from ponix_clickhouse import qualified_name
from ponix_config import NatsSettings
from ponix_nats import list_dead_letters
from ponix_proto import pb

Content = tuple[int, int]
"""Digests of an envelope's expected row: with timestamps in seconds, and in milliseconds."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_PER_MS: Final = 1_000_000


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
    mismatched: tuple[str, ...] = field(default=())
    valid_dead_lettered: tuple[str, ...] = field(default=())
    """Valid envelopes (PubAck'd as such) found in the DLQ: the contract says none."""

    @property
    def clean(self) -> bool:
        return not (
            self.lost
            or self.duplicated
            or self.unexpected
            or self.mismatched
            or self.dlq_missing
            or self.dlq_unexpected
        )

    def summary(self) -> str:
        return (
            f"published={self.published} poison={self.poison_published} rows={self.rows} "
            f"stored={self.stored} lost={len(self.lost)} duplicated={self.duplicated} "
            f"unexpected={len(self.unexpected)} mismatched={len(self.mismatched)} "
            f"dlq={self.dead_lettered} dlq_valid={len(self.valid_dead_lettered)} "
            f"dlq_missing={len(self.dlq_missing)} dlq_unexpected={len(self.dlq_unexpected)}"
            + (f" first lost={list(self.lost[:5])}" if self.lost else "")
            + (f" first mismatched={list(self.mismatched[:5])}" if self.mismatched else "")
            + (f" first duplicated={list(self.duplicated_ids[:5])}" if self.duplicated else "")
            + (f" first dlq_missing={list(self.dlq_missing[:5])}" if self.dlq_missing else "")
        )


def judge(
    ledger: Iterable[str],
    rows_per_id: Mapping[str, int],
    *,
    poison: Iterable[str] = (),
    dead_letters: Iterable[str] = (),
    expected: Mapping[str, int] | None = None,
    contents: Mapping[str, Collection[int]] | None = None,
) -> Verdict:
    """The figures from the three inputs (pure: no server involved). ``expected`` (a valid id's
    row digest, see :func:`envelope_content`) and ``contents`` (the digests of its stored rows,
    see :func:`row_content`) add the content comparison."""
    valid = set(ledger)
    mismatched: list[str] = []
    if expected is not None and contents is not None:
        mismatched = [
            envelope_id
            for envelope_id, digests in contents.items()
            if envelope_id in expected and any(d != expected[envelope_id] for d in digests)
        ]
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
        mismatched=tuple(sorted(mismatched)),
        valid_dead_lettered=tuple(sorted(dlq_ids & valid)),
    )


def envelope_content(payload: bytes) -> tuple[str, Content]:
    """A valid envelope's id and the digests of the row it must become, decoded with
    ``json_format`` (independent of the ingester's row builder). Timestamps are cut, not
    rounded, to the table's unit; a missing ``processed_at`` takes ``occurred_at``."""
    env = pb.ProcessedEnvelope.FromString(payload)
    occurred = env.occurred_at
    processed = env.processed_at if env.HasField("processed_at") else occurred
    data = _canonical(json_format.MessageToDict(env.data))
    head = (env.id, env.organization_id, env.end_device_id)
    in_seconds = (occurred.seconds, processed.seconds)
    in_ms = tuple(t.seconds * 1000 + t.nanos // _NANOS_PER_MS for t in (occurred, processed))
    return env.id, (hash((*head, *in_seconds, data)), hash((*head, *in_ms, data)))


def row_content(row: tuple[Any, ...], *, milliseconds: bool) -> tuple[str, int]:
    """A stored row's id and digest, comparable with :func:`envelope_content`'s (``row`` in
    the column order id, organization_id, end_device_id, occurred_at, processed_at, data)."""
    envelope_id, organization, device, occurred, processed, data = row
    unit = timedelta(milliseconds=1) if milliseconds else timedelta(seconds=1)
    times = tuple((_aware(t) - _EPOCH) // unit for t in (occurred, processed))
    parsed = data
    if isinstance(data, str | bytes):
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data  # not JSON at all (a column added back empty): compared as text
    head = (str(envelope_id), str(organization), str(device))
    return head[0], hash((*head, *times, _canonical(parsed)))


def _aware(value: datetime) -> datetime:
    # clickhouse-driver returns DateTime('UTC') naive or aware depending on its version.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _canonical(data: Any) -> str:
    """JSON text that equal documents share: keys sorted, every number a float (a Struct holds
    only doubles; ``1`` and ``1.0`` are the same value)."""
    return json.dumps(_floats(data), sort_keys=True, ensure_ascii=False)


def _floats(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return value


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
