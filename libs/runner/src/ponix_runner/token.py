"""The shutdown signal every process receives, and the source that sets it.

``ShutdownSignal`` is the one Protocol for "has shutdown been requested": anything that only
waits for a shutdown (a consumer loop, a writer, a test fake) takes that. ``ShutdownToken`` is
the runner's implementation, a read-only view of a ``ShutdownSource``; only the source's holder
(the runner) sets it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from ponix_runner.deadline import Deadline

__all__ = ("ShutdownSignal", "ShutdownSource", "ShutdownToken")


class ShutdownSignal(Protocol):
    """Whether shutdown has been requested, and a way to wait for it.

    ``ShutdownToken`` is one; a test may pass any object with these two members.
    """

    @property
    def is_set(self) -> bool:
        """Whether shutdown has been requested."""
        ...

    async def wait(self) -> None:
        """Return once shutdown has been requested."""
        ...


class ShutdownSource:
    """The setting side of a ``ShutdownToken``: whoever holds it decides when shutdown starts.

    The runner holds one per run and hands out ``source.token``; tests may hold their own.
    """

    __slots__ = ("_deadline", "_event", "token")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._deadline: Deadline | None = None
        self.token = ShutdownToken(self)

    @property
    def is_set(self) -> bool:
        """Whether shutdown has been requested."""
        return self._event.is_set()

    @property
    def deadline(self) -> Deadline | None:
        """When the grace period ends, or ``None`` while no shutdown has been requested."""
        return self._deadline

    async def wait(self) -> None:
        """Return once shutdown has been requested."""
        await self._event.wait()

    def request(self, deadline: Deadline) -> bool:
        """Request shutdown with a grace period ending at ``deadline``.

        Returns whether this call did it: a second request changes nothing.
        """
        if self._event.is_set():
            return False
        self._deadline = deadline
        self._event.set()
        return True

    def expire(self) -> None:
        """End the grace period now (a forced shutdown); requests shutdown if not yet done."""
        self._deadline = Deadline.after(0.0)
        self._event.set()


class ShutdownToken:
    """Tells a process that shutdown was requested, and how much grace it has left.

    A process should return soon after the token is set. When the grace period runs out the
    runner cancels it. The token is read-only: its ``ShutdownSource`` sets it.
    """

    __slots__ = ("_source",)

    def __init__(self, source: ShutdownSource) -> None:
        self._source = source

    @property
    def is_set(self) -> bool:
        """Whether shutdown has been requested."""
        return self._source.is_set

    @property
    def deadline(self) -> Deadline | None:
        """When the grace period ends, or ``None`` while no shutdown has been requested."""
        return self._source.deadline

    def remaining(self) -> float | None:
        """Seconds of grace left, or ``None`` while no shutdown has been requested.

        This drops to zero when shutdown is forced.
        """
        deadline = self._source.deadline
        return None if deadline is None else deadline.remaining()

    async def wait(self) -> None:
        """Return once shutdown has been requested."""
        await self._source.wait()

    async def sleep(self, delay: float) -> bool:
        """Sleep for ``delay`` seconds, waking early if shutdown is requested.

        Returns ``True`` if shutdown has been requested, so a periodic loop reads as
        ``while not await token.sleep(interval): ...``.
        """
        if not self.is_set:
            try:
                async with asyncio.timeout(delay):
                    await self._source.wait()
            except TimeoutError:
                return self.is_set
        return True
