"""The shutdown token is a read-only view: only its source sets it."""

from __future__ import annotations

import pytest

from ponix_runner import Deadline, ShutdownSignal, ShutdownSource, ShutdownToken


async def test_a_source_sets_its_token_once_and_can_expire_the_grace() -> None:
    source = ShutdownSource()
    token = source.token
    assert (token.is_set, token.deadline, token.remaining()) == (False, None, None)
    assert not await token.sleep(0.01)

    assert source.request(Deadline.after(30.0))
    assert not source.request(Deadline.after(1.0))  # the first request's grace stands
    await token.wait()
    assert token.is_set
    assert await token.sleep(30.0)  # returns at once
    remaining = token.remaining()
    assert remaining is not None
    assert 29.0 < remaining <= 30.0

    source.expire()
    assert token.remaining() == 0.0


def test_the_token_has_nothing_that_sets_it() -> None:
    token = ShutdownSource().token
    public = {name for name in dir(token) if not name.startswith("_")}
    assert public == {"deadline", "is_set", "remaining", "sleep", "wait"}
    with pytest.raises(AttributeError):
        token.is_set = True  # type: ignore[misc]


def test_the_token_is_a_shutdown_signal() -> None:
    signal: ShutdownSignal = ShutdownSource().token
    assert isinstance(signal, ShutdownToken)
    assert signal.is_set is False
