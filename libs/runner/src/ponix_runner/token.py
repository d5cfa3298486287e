"""The shutdown token that every process receives."""

from __future__ import annotations

import asyncio

from ponix_runner.deadline import Deadline

__all__ = ("ShutdownToken",)


class ShutdownToken:
    """Tells a process that shutdown was requested, and how much grace it has left.

    A process should return soon after the token is set. When the grace period runs out the
    runner cancels it. Only the runner sets a token.
    """

    __slots__ = ("_deadline", "_event")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._deadline: Deadline | None = None

    @property
    def is_set(self) -> bool:
        """Whether shutdown has been requested."""
        return self._event.is_set()

    @property
    def deadline(self) -> Deadline | None:
        """When the grace period ends, or ``None`` while no shutdown has been requested."""
        return self._deadline

    def remaining(self) -> float | None:
        """Seconds of grace left, or ``None`` while no shutdown has been requested.

        This drops to zero when shutdown is forced.
        """
        return None if self._deadline is None else self._deadline.remaining()

    async def wait(self) -> None:
        """Return once shutdown has been requested."""
        await self._event.wait()

    async def sleep(self, delay: float) -> bool:
        """Sleep for ``delay`` seconds, waking early if shutdown is requested.

        Returns ``True`` if shutdown has been requested, so a periodic loop reads as
        ``while not await token.sleep(interval): ...``.
        """
        if not self._event.is_set():
            try:
                async with asyncio.timeout(delay):
                    await self._event.wait()
            except TimeoutError:
                return self._event.is_set()
        return True

    def _set(self, deadline: Deadline) -> None:
        if self._event.is_set():
            return
        self._deadline = deadline
        self._event.set()

    def _expire(self) -> None:
        self._deadline = Deadline.after(0.0)
