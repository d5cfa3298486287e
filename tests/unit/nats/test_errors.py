"""Errors: stable codes, one line, and the data that explains them."""

import pytest

from ponix_nats import (
    DeadLetterNotFoundError,
    NatsAuthError,
    NatsError,
    NatsUnavailableError,
    ProvisioningError,
    PublishError,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            NatsUnavailableError("nats://h:4222", "connect call failed\n(refused)"),
            "nats.unreachable",
        ),
        (NatsAuthError("nats://h:4222", "authorization violation"), "nats.auth_failed"),
        (ProvisioningError("S", ["storage"], "cannot change"), "nats.stream_conflict"),
        (PublishError("s.x", "id-1", "maximum message size exceeded"), "nats.publish_failed"),
        (DeadLetterNotFoundError("S_DLQ", 7), "nats.dead_letter_not_found"),
    ],
)
def test_every_error_is_one_line_starting_with_its_code(error: NatsError, code: str) -> None:
    assert error.code == code
    assert str(error).startswith(f"{code}: ")
    assert "\n" not in str(error)


def test_errors_carry_their_data() -> None:
    error = ProvisioningError("S", ["storage", "retention"], "no", consumer="c")
    assert (error.stream, error.consumer, error.fields) == ("S", "c", ("storage", "retention"))
    assert "consumer S/c: storage, retention: no" in str(error)
    unavailable = NatsUnavailableError("nats://h:1", "timed out")
    assert (unavailable.url, unavailable.reason) == ("nats://h:1", "timed out")
