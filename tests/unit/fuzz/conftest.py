"""Fuzz and property tests: how many examples each one ran, printed at the end of the session.

``PONIX_FUZZ_EXAMPLES`` scales every ``max_examples`` here (default 1.0; ``10`` for a long run).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest

_COUNTS: Counter[str] = Counter()
_PLANNED: dict[str, int] = {}


def _scaled(examples: int) -> int:
    factor = float(os.environ.get("PONIX_FUZZ_EXAMPLES", "1") or "1")
    return max(1, int(examples * factor))


class ExampleCounter:
    """Counts the examples a property actually ran (shrinks and replays included)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def plan(self, max_examples: int) -> int:
        """``max_examples`` scaled by ``PONIX_FUZZ_EXAMPLES``; use it in ``@settings``."""
        planned = _scaled(max_examples)
        _PLANNED[self.name] = planned
        return planned

    def hit(self, n: int = 1) -> None:
        _COUNTS[self.name] += n

    @property
    def count(self) -> int:
        return _COUNTS[self.name]


@pytest.fixture
def examples(request: pytest.FixtureRequest) -> ExampleCounter:
    """A counter named after the test; what it counted is printed in the terminal summary."""
    return ExampleCounter(request.node.name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _COUNTS:
        return
    terminalreporter.section("fuzz examples run")
    for name in sorted(_COUNTS):
        planned = _PLANNED.get(name)
        shown = f" (max_examples={planned})" if planned is not None else ""
        terminalreporter.write_line(f"{name}: {_COUNTS[name]} examples{shown}")
