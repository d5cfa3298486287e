"""What ``ponix audit`` found, as counts with the first examples of each kind, and how it reads.

Every list keeps at most :data:`LISTED` examples while its total keeps counting, so a report of
a million unprocessed envelopes stays as small as a clean one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Final, Generic, TypeVar

from ponix_cli import render

LISTED: Final = 1000
SHOWN: Final = 20

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A stream message the audit expects in the table."""

    seq: int
    id: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    seq: int
    code: str


@dataclass(frozen=True, slots=True)
class Poisoned:
    seq: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    id: str
    rows: int


@dataclass(slots=True)
class Examples(Generic[T]):
    """A count and its first :data:`LISTED` examples."""

    total: int = 0
    first: list[T] = field(default_factory=list)

    def add(self, item: T) -> None:
        self.total += 1
        if len(self.first) < LISTED:
            self.first.append(item)


@dataclass(slots=True)
class Findings:
    """Filled chunk by chunk as the stream is read."""

    read: int = 0
    expected: int = 0
    stored: int = 0
    redriven: int = 0
    first_seq: int = 0
    last_seq: int = 0
    dead_lettered: Examples[DeadLettered] = field(default_factory=Examples)
    poison: Examples[Poisoned] = field(default_factory=Examples)
    unprocessed: Examples[Envelope] = field(default_factory=Examples)
    missing: Examples[Envelope] = field(default_factory=Examples)
    duplicated: Examples[Duplicate] = field(default_factory=Examples)

    def saw(self, seq: int) -> None:
        self.read += 1
        self.first_seq = self.first_seq or seq
        self.last_seq = seq


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What ``ponix audit`` found; ``ok`` when nothing is missing or duplicated.

    The lists hold the first :data:`LISTED` of each kind; ``*_total`` counts them all.
    """

    stream: str
    table: str
    dlq_stream: str
    range: str
    first_seq: int
    last_seq: int
    read: int
    ack_floor: int
    expected: int
    stored: int
    redriven: int
    seconds: float
    dead_lettered: list[DeadLettered] = field(default_factory=list)
    poison: list[Poisoned] = field(default_factory=list)
    unprocessed: list[Envelope] = field(default_factory=list)
    missing: list[Envelope] = field(default_factory=list)
    duplicated: list[Duplicate] = field(default_factory=list)
    dead_lettered_total: int = 0
    poison_total: int = 0
    unprocessed_total: int = 0
    missing_total: int = 0
    duplicated_total: int = 0

    @classmethod
    def of(
        cls,
        found: Findings,
        *,
        stream: str,
        table: str,
        dlq_stream: str,
        range_: str,
        ack_floor: int,
        seconds: float,
    ) -> AuditReport:
        return cls(
            stream=stream,
            table=table,
            dlq_stream=dlq_stream,
            range=range_,
            first_seq=found.first_seq,
            last_seq=found.last_seq,
            read=found.read,
            ack_floor=ack_floor,
            expected=found.expected,
            stored=found.stored,
            redriven=found.redriven,
            seconds=seconds,
            dead_lettered=found.dead_lettered.first,
            poison=found.poison.first,
            unprocessed=found.unprocessed.first,
            missing=found.missing.first,
            duplicated=found.duplicated.first,
            dead_lettered_total=found.dead_lettered.total,
            poison_total=found.poison.total,
            unprocessed_total=found.unprocessed.total,
            missing_total=found.missing.total,
            duplicated_total=found.duplicated.total,
        )

    @property
    def ok(self) -> bool:
        return not self.missing_total and not self.duplicated_total

    def to_json(self) -> str:
        body = asdict(self)
        body["ok"] = self.ok
        return json.dumps(body, indent=2)


def render_report(report: AuditReport) -> str:
    """The human view: one line per category, examples of each problem, then the verdict."""
    span = f"seq {report.first_seq}..{report.last_seq}" if report.read else "nothing to read"
    lines = [
        f"audit of stream {report.stream} ({report.range}: {span}) against {report.table}: "
        f"{render.count(report.read)} messages read in {render.duration(report.seconds)}",
        _row("stored", report.stored, "distinct envelope ids found in the table"),
        _row(
            "dead-lettered",
            report.dead_lettered_total,
            f"poison in {report.dlq_stream}: `ponix dlq list`",
        ),
        _row(
            "poison, not in DLQ", report.poison_total, "can never be stored; its DLQ copy is gone"
        ),
        _row("redriven", report.redriven, "originals replaced by their redriven copy"),
        _row(
            "not yet processed",
            report.unprocessed_total,
            f"above the consumer's ack floor ({report.ack_floor}): still in flight",
        ),
        _row("missing", report.missing_total, "acked but not in the table"),
        _row(
            "duplicated ids", report.duplicated_total, "more than one row in the exact read (FINAL)"
        ),
    ]
    lines += _examples("missing", ((e.seq, e.id) for e in report.missing), ("seq", "id"))
    lines += _examples("duplicated", ((d.id, d.rows) for d in report.duplicated), ("id", "rows"))
    lines += _examples(
        "poison, not in DLQ", ((p.seq, p.code) for p in report.poison), ("seq", "code")
    )
    if report.ok:
        lines.append("OK: every envelope read is stored exactly once.")
    else:
        lines.append(
            f"FAILED: {render.count(report.missing_total)} missing, "
            f"{render.count(report.duplicated_total)} duplicated"
        )
    return "\n".join(lines)


def _row(label: str, n: int, note: str) -> str:
    return f"  {label:<20}{render.count(n):>10}  {note}"


def _examples(
    title: str, pairs: Iterable[tuple[object, object]], names: tuple[str, str]
) -> list[str]:
    listed = list(pairs)
    if not listed:
        return []
    lines = [f"{title} (first {min(len(listed), SHOWN)}):"]
    lines += [f"  {names[0]} {a}  {names[1]} {b}" for a, b in listed[:SHOWN]]
    return lines
