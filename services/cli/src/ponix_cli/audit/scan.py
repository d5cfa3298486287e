"""The audit's scan: each stream message named with the ingester's rule, gathered into chunks,
and each chunk settled against what the table holds.

Only one chunk of ids is held at a time, so memory stays flat however long the stream is. Per
message:

* a message whose copy is in the DLQ is *dead-lettered* (poison, not missing);
* a message the rule says is poison, with no DLQ copy, is *poison, not in the DLQ* (its copy
  was redriven or expired);
* a message without a ``Nats-Msg-Id`` whose envelope has no id either is named by stream and
  sequence; ``ponix dlq redrive`` republishes it as ``redrive:<stream>:<seq>``, under another
  id. The scan also asks the table for that id: when only the copy is stored, the original is
  *redriven*, not missing;
* an id absent from the table is *missing* when its sequence is at or below the durable
  consumer's ack floor (acked, so it should be stored), *not yet processed* above it;
* an id with more than one row in the exact read (``FINAL``) is *duplicated*.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ponix_cli.audit.naming import Namer, Unstorable
from ponix_cli.audit.report import DeadLettered, Duplicate, Envelope, Findings, Poisoned
from ponix_proto import MSG_ID_HEADER

if TYPE_CHECKING:
    from nats.aio.msg import Msg

CHUNK: Final = 20_000


@dataclass(frozen=True, slots=True)
class Expected:
    """A message the table should hold under ``id``; ``redrive_id`` is the id its redriven copy
    would be stored under, when that differs."""

    seq: int
    id: str
    redrive_id: str | None = None


@dataclass(slots=True)
class Chunk:
    """Up to :data:`CHUNK` expected envelopes, each id once (at its first sequence)."""

    envelopes: dict[str, Expected] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.envelopes)

    def ids(self) -> list[str]:
        """Every id to look up: the envelopes' and their redriven copies'."""
        found = list(self.envelopes)
        found += [e.redrive_id for e in self.envelopes.values() if e.redrive_id]
        return found


class Scan:
    """``add`` each message in stream order; it returns a chunk whenever one is full."""

    def __init__(
        self,
        stream: str,
        namer: Namer,
        dead: Mapping[int, str],
        findings: Findings,
        *,
        chunk_size: int = CHUNK,
    ) -> None:
        self._stream = stream
        self._namer = namer
        self._dead = dead
        self._found = findings
        self._size = chunk_size
        self._chunk = Chunk()

    def add(self, msg: Msg, seq: int) -> Chunk | None:
        self._found.saw(seq)
        code = self._dead.get(seq)
        if code is not None:
            self._found.dead_lettered.add(DeadLettered(seq, code))
            return None
        named = self._namer.name(msg)
        if isinstance(named, Unstorable):
            self._found.poison.add(Poisoned(seq, named.code, named.reason))
            return None
        redrive_id = None
        headers = msg.headers
        if not (headers and headers.get(MSG_ID_HEADER)):
            copy = self._namer.name(msg, key=f"redrive:{self._stream}:{seq}")
            if not isinstance(copy, Unstorable) and copy.id != named.id:
                redrive_id = copy.id
        self._chunk.envelopes.setdefault(named.id, Expected(seq, named.id, redrive_id))
        if len(self._chunk) >= self._size:
            return self.take()
        return None

    def take(self) -> Chunk:
        """The chunk gathered so far (possibly empty); the next one starts empty."""
        chunk, self._chunk = self._chunk, Chunk()
        return chunk


def settle(
    findings: Findings,
    chunk: Chunk,
    present: Collection[str],
    duplicates: Iterable[Duplicate],
    *,
    ack_floor: int,
    reported: set[str],
) -> None:
    """Count ``chunk`` against the ids the table holds (``present``) and the ids with more
    than one row in the exact read; ``reported`` keeps a duplicate from being listed twice."""
    findings.expected += len(chunk)
    for expected in chunk.envelopes.values():
        if expected.id in present:
            findings.stored += 1
        elif expected.redrive_id and expected.redrive_id in present:
            findings.redriven += 1
        elif expected.seq > ack_floor:
            findings.unprocessed.add(Envelope(expected.seq, expected.id))
        else:
            findings.missing.add(Envelope(expected.seq, expected.id))
    for duplicate in duplicates:
        if duplicate.id not in reported:
            reported.add(duplicate.id)
            findings.duplicated.add(duplicate)
