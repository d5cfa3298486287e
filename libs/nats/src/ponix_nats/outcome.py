"""What a processor decided for each message of a batch: ack, nak (with a delay) or term.

This is on the hot path: an all-acked batch of N messages costs one small object, not N.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, overload


@dataclass(frozen=True, slots=True)
class Ack:
    """The message is done (its row is stored): never redeliver."""


@dataclass(frozen=True, slots=True)
class Nak:
    """Redeliver after ``delay`` seconds, or after the consumer's exponential backoff when
    ``delay`` is None.

    ``counted``: the failure was the message's own (a processor crash), so the delivery counts
    toward ``NATS_MAX_DELIVER`` and the last one is dead-lettered. A store's failure (the
    writer still held the batch at shutdown) is not counted: such a nak never dead-letters.
    """

    code: str
    error: str
    delay: float | None = None
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Term:
    """Poison (undecodable, invalid, too large): copy to the DLQ, then never redeliver."""

    code: str
    reason: str


Outcome = Ack | Nak | Term

ACK: Final = Ack()


class Uniform(Sequence[Outcome]):
    """``n`` times the same outcome, without ``n`` references: what ``ack_all`` returns."""

    __slots__ = ("_n", "outcome")

    def __init__(self, outcome: Outcome, n: int) -> None:
        if n < 0:
            msg = f"a batch cannot hold {n} messages"
            raise ValueError(msg)
        self.outcome = outcome
        self._n = n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> Outcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Outcome]: ...
    def __getitem__(self, index: int | slice) -> Outcome | Sequence[Outcome]:
        if isinstance(index, slice):
            return Uniform(self.outcome, len(range(*index.indices(self._n))))
        if not -self._n <= index < self._n:
            msg = "outcome index out of range"
            raise IndexError(msg)
        return self.outcome

    def __iter__(self) -> Iterator[Outcome]:
        outcome = self.outcome
        for _ in range(self._n):
            yield outcome

    def __repr__(self) -> str:
        return f"Uniform({self.outcome!r}, {self._n})"


@dataclass(frozen=True, slots=True)
class ProcessingResult:
    """One outcome per message, in the order the messages were handed to the processor."""

    outcomes: Sequence[Outcome]

    @classmethod
    def ack_all(cls, n: int) -> ProcessingResult:
        """All ``n`` messages are done; allocates nothing per message."""
        return cls(Uniform(ACK, n))

    @classmethod
    def nak_all(
        cls, n: int, code: str, error: str, delay: float | None = None, *, counted: bool = True
    ) -> ProcessingResult:
        """All ``n`` messages are to be redelivered; one shared ``Nak``."""
        return cls(Uniform(Nak(code, error, delay, counted), n))

    def __len__(self) -> int:
        return len(self.outcomes)
