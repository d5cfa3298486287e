"""Waiting for a dependency at start-up, as after a host reboot: backoff, one line per attempt."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ponix_runner.backoff import Backoff
from ponix_runner.deadline import Deadline

__all__ = ("wait_until_available",)

T = TypeVar("T")

_log = logging.getLogger(__name__)
# As after a host reboot: replicas starting together spread their attempts.
_STARTUP_BACKOFF = Backoff(initial=0.5, maximum=5.0, jitter=0.2)


async def wait_until_available(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    deadline: Deadline,
    backoff: Backoff = _STARTUP_BACKOFF,
) -> T:
    """Call ``attempt`` until it succeeds, retrying only ``retry_on`` errors with backoff.

    Each failed attempt logs one line with the error and the next delay. When the deadline
    passes, the last error is raised as it is: errors a user can cause already read as one line.
    Any other error (bad credentials, say) is raised at once: waiting would not fix it.
    """
    tries = 0
    while True:
        tries += 1
        try:
            return await attempt()
        except retry_on as exc:
            left = deadline.remaining()
            if left <= 0:
                raise
            wait = min(backoff.delay(tries), left)
            _log.warning(
                "waiting for dependency",
                extra={
                    "dependency": what,
                    "attempt": tries,
                    "retry_in": round(wait, 2),
                    "error": str(exc),
                },
            )
            await asyncio.sleep(wait)
