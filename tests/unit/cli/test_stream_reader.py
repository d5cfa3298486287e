"""When the stream stops delivering: the end of what is left, or a stall that fails loudly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from ponix_cli.errors import CliError
from ponix_cli.stream_reader import _wait


@dataclass
class _Info:
    num_pending: int


def _info(pending: int) -> object:
    async def consumer_info() -> _Info:
        return _Info(pending)

    return consumer_info


async def test_silence_with_nothing_pending_is_the_end() -> None:
    await _wait(asyncio.Event(), asyncio.Event(), lambda: False, _info(0), 0.01)  # type: ignore[arg-type]


async def test_silence_with_messages_pending_fails_instead_of_a_partial_read() -> None:
    with pytest.raises(CliError) as raised:
        await _wait(
            asyncio.Event(),
            asyncio.Event(),
            lambda: False,
            _info(7),  # type: ignore[arg-type]
            0.01,
            max_idle=0.05,
        )
    assert raised.value.code == "nats.read_stalled"
    assert "7 messages still pending" in raised.value.message


async def test_a_busy_handler_is_not_a_stall() -> None:
    finished = asyncio.Event()
    asked: list[int] = []

    async def consumer_info() -> _Info:
        asked.append(1)
        return _Info(7)

    async def finish_later() -> None:
        await asyncio.sleep(0.1)
        finished.set()

    task = asyncio.create_task(finish_later())
    await _wait(finished, asyncio.Event(), lambda: True, consumer_info, 0.01, max_idle=0.02)  # type: ignore[arg-type]
    await task
    assert not asked
