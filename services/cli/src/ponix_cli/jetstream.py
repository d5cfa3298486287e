"""What the verbs share about JetStream: a connection that is always closed, look-ups on it,
and the one warning line for a stream or consumer that differs from the settings.

The look-ups are ``ponix_nats.stream_info``/``consumer_info`` (missing is ``None``, a server that
does not answer is ``nats.unreachable``), taken here on a connection rather than a JetStream
context. Only ``ponix provision`` (and the ingester) changes the server; every other verb reports
drift with :func:`warn_drift` and leaves it alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

import nats.errors

from ponix_cli import console
from ponix_nats import TopologyCheck, connect
from ponix_nats import consumer_info as _consumer_info
from ponix_nats import stream_info as _stream_info

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.api import ConsumerInfo, StreamInfo

    from ponix_config import NatsSettings

_CLOSE_TIMEOUT: Final = 2.0


@asynccontextmanager
async def connection(settings: NatsSettings, *, name: str) -> AsyncIterator[Client]:
    """A connection for one short verb, closed (within a bound) however the verb ends."""
    nc = await connect(settings, name=name)
    try:
        yield nc
    finally:
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await nc.close()
        except (TimeoutError, nats.errors.Error):
            pass  # the verb's own outcome is what matters


async def stream_info(nc: Client, settings: NatsSettings, stream: str) -> StreamInfo | None:
    """``ponix_nats.stream_info`` on ``nc``: the stream's info, ``None`` when it is missing."""
    return await _stream_info(nc.jetstream(), settings, stream)


async def consumer_info(
    nc: Client, settings: NatsSettings, stream: str, consumer: str
) -> ConsumerInfo | None:
    """``ponix_nats.consumer_info`` on ``nc``: ``None`` when the consumer or stream is missing."""
    return await _consumer_info(nc.jetstream(), settings, stream, consumer)


def drift_line(check: TopologyCheck, *, missing: bool = True) -> str | None:
    """The warning for a topology that differs from the settings, or ``None`` when it matches
    (``missing=False``: field differences only, for a verb that shows what is missing itself)."""
    if not check.drift and not (missing and check.missing):
        return None
    shown = check if missing else dataclasses.replace(check, missing=())
    return (
        "warning: nats.drift: left as is (`ponix provision` applies these settings): "
        + shown.summary()
    )


def warn_drift(check: TopologyCheck, *, missing: bool = True) -> None:
    """Print :func:`drift_line` on stderr when there is anything to say."""
    line = drift_line(check, missing=missing)
    if line is not None:
        console.warn(line)
