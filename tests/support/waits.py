"""Waiting on server state that has no event to wait on (consumer info, row counts): poll at a
short interval against one monotonic deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

__all__ = ("eventually",)

T = TypeVar("T")

_POLL_EVERY: Final = 0.05


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: float,
    what: str,
    every: float = _POLL_EVERY,
) -> T:
    """Await ``check()`` until it returns something truthy, and return that.

    For server state only (consumer info, row counts): there is no event to wait on. One
    monotonic deadline; on expiry, ``AssertionError`` names ``what`` and the last value seen.
    """
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            msg = f"not within {within:g}s: {what} (last: {value!r})"
            raise AssertionError(msg)
        await asyncio.sleep(every)
