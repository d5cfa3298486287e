from __future__ import annotations

import logging

import pytest

from ponix_runner import Backoff, Deadline, wait_until_available

QUICK = Backoff(initial=0.01, maximum=0.02)


class _DownError(Exception):
    pass


class _AuthError(Exception):
    pass


async def test_retries_until_the_dependency_appears(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise _DownError("connection refused")
        return "connected"

    with caplog.at_level(logging.WARNING, logger="ponix_runner.startup"):
        got = await wait_until_available(
            "clickhouse",
            attempt,
            retry_on=(_DownError,),
            deadline=Deadline.after(5),
            backoff=QUICK,
        )
    assert got == "connected"
    waits = [r for r in caplog.records if r.getMessage() == "waiting for dependency"]
    assert [getattr(r, "attempt", None) for r in waits] == [1, 2]
    assert all(getattr(r, "dependency", None) == "clickhouse" for r in waits)


async def test_gives_up_at_the_deadline_with_the_last_error() -> None:
    async def attempt() -> None:
        raise _DownError("still down")

    with pytest.raises(_DownError, match="still down"):
        await wait_until_available(
            "nats",
            attempt,
            retry_on=(_DownError,),
            deadline=Deadline.after(0.05),
            backoff=QUICK,
        )


async def test_an_error_waiting_cannot_fix_is_raised_at_once() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise _AuthError("bad password")

    with pytest.raises(_AuthError):
        await wait_until_available(
            "nats", attempt, retry_on=(_DownError,), deadline=Deadline.after(5), backoff=QUICK
        )
    assert calls == 1
