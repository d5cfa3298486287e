"""What a process sees of shutdown: the one Protocol every lib accepts."""

from __future__ import annotations

from typing import Protocol

__all__ = ("ShutdownSignal",)


class ShutdownSignal(Protocol):
    """Set once shutdown was requested. :class:`~ponix_runner.ShutdownToken` is one; a test may
    pass any object with these two members (an ``asyncio.Event`` lacks ``is_set`` as a property,
    so wrap it)."""

    @property
    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...
