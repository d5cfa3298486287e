"""Outcomes and the backoff: cheap, immutable, and right at the edges."""

import dataclasses
import tracemalloc

import pytest

from ponix_nats import ACK, Ack, Nak, ProcessingResult, Term
from ponix_runner import Backoff


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0)
    assert [backoff.delay(d) for d in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_backoff_survives_absurd_delivery_counts() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0)
    assert backoff.delay(10_000) == 30.0
    assert backoff.delay(0) == 0.5


def test_jitter_spreads_the_delay_within_its_bounds() -> None:
    backoff = Backoff(initial=10.0, maximum=10.0, jitter=0.2)
    delays = {backoff.delay(1) for _ in range(200)}
    assert min(delays) >= 8.0
    assert max(delays) <= 12.0
    assert len(delays) > 100


@pytest.mark.parametrize(
    ("initial", "maximum", "jitter"), [(0.0, 1.0, 0.0), (2.0, 1.0, 0.0), (1.0, 2.0, 1.0)]
)
def test_a_backoff_that_makes_no_sense_is_refused(
    initial: float, maximum: float, jitter: float
) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(initial=initial, maximum=maximum, jitter=jitter)


def test_ack_all_shares_one_ack_and_allocates_nothing_per_message() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = ProcessingResult.ack_all(1_000_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1024
    assert len(result) == 1_000_000
    assert result.outcomes[0] is ACK
    assert result.outcomes[-1] is ACK
    assert all(o is ACK for o in result.outcomes[:1000])
    assert len(result.outcomes[10:20]) == 10
    with pytest.raises(IndexError):
        result.outcomes[1_000_000]


def test_nak_all_shares_one_nak() -> None:
    result = ProcessingResult.nak_all(3, "clickhouse.unavailable", "connection refused")
    first, *rest = result.outcomes
    assert first == Nak("clickhouse.unavailable", "connection refused", None)
    assert first.counted
    assert all(o is first for o in rest)


def test_outcomes_are_frozen_and_slotted() -> None:
    assert not hasattr(Ack(), "__dict__")
    assert Ack() == ACK
    for outcome in (Nak("c", "e", 1.0), Term("c", "r")):
        assert not hasattr(outcome, "__dict__")
        with pytest.raises(dataclasses.FrozenInstanceError):
            outcome.code = "other"  # type: ignore[misc]


def test_processing_result_takes_any_sequence() -> None:
    result = ProcessingResult([ACK, Nak("c", "e"), Term("c", "r")])
    assert len(result) == 3
