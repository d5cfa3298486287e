"""One backoff for every retry loop: capped exponential, with optional jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

__all__ = ("Backoff",)

# 2**62 is beyond any cap anyone configures; it keeps the float math finite.
_MAX_EXPONENT: Final = 62


@dataclass(frozen=True, slots=True)
class Backoff:
    """``initial * multiplier ** (attempt - 1)``, capped at ``maximum``, then spread by up to
    ``± jitter`` (a fraction) so that replicas retrying the same outage do not move in step.

    ``attempt`` counts from 1 (the wait after the first failure). With ``jitter=0`` the delay
    is exact, which is what a JetStream nak delay or a test wants.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            msg = f"backoff needs 0 < initial <= maximum, got {self.initial} and {self.maximum}"
            raise ValueError(msg)
        if self.multiplier < 1 or not 0 <= self.jitter < 1:
            msg = "backoff needs multiplier >= 1 and 0 <= jitter < 1"
            raise ValueError(msg)

    def base(self, attempt: int) -> float:
        """The delay after ``attempt`` failures, before jitter."""
        exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int) -> float:
        """The delay after ``attempt`` failures, jitter included."""
        base = self.base(attempt)
        if not self.jitter:
            return base
        return base * (1.0 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - not crypto
