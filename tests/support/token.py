"""A shutdown token the test sets itself: what ``BatchConsumer.run`` and ``BatchWriter.run`` see
of the runner's ``ShutdownToken`` (whose setter belongs to the runner)."""

from __future__ import annotations

import asyncio


class Token:
    """The runner's ShutdownToken as far as the consumer and the writer see it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    @property
    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def set(self) -> None:
        self._event.set()
