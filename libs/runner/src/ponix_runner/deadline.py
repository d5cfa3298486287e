"""A monotonic budget that several shutdown steps share."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ("Deadline",)


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point on the ``time.monotonic()`` clock.

    Steps that share one budget each take what is *left* of it (:meth:`remaining`), so their
    combined time stays bounded by the budget rather than by a multiple of it.
    """

    at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now (negative values mean now)."""
        return cls(time.monotonic() + max(0.0, seconds))

    def remaining(self) -> float:
        """Seconds left, never below zero."""
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.at
