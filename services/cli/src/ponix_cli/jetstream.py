"""JetStream look-ups the verbs share: stream and consumer info that tell "missing" apart from
"unreachable", and a connection that is always closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Final, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import ConsumerInfo, StreamInfo

from ponix_config import NatsSettings
from ponix_nats import NatsUnavailableError, connect

T = TypeVar("T")

# JetStream's "stream not found" and "consumer not found" (server/errors.json).
STREAM_NOT_FOUND: Final = 10059
CONSUMER_NOT_FOUND: Final = 10014
_UNAVAILABLE: Final = (
    TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
)
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
    """The stream's info, or ``None`` when it does not exist (yet)."""
    try:
        return await _ask(settings, f"stream info {stream}", nc.jetstream().stream_info(stream))
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code in (STREAM_NOT_FOUND, None):
            return None
        raise _unavailable(settings, f"stream info {stream}", exc) from None


async def consumer_info(
    nc: Client, settings: NatsSettings, stream: str, consumer: str
) -> ConsumerInfo | None:
    """The durable consumer's info, or ``None`` when it (or its stream) does not exist."""
    try:
        info: ConsumerInfo = await _ask(
            settings,
            f"consumer info {stream}/{consumer}",
            nc.jetstream().consumer_info(stream, consumer),
        )
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND, None):
            return None
        raise _unavailable(settings, f"consumer info {stream}/{consumer}", exc) from None
    return info


async def _ask(settings: NatsSettings, doing: str, request: Awaitable[T]) -> T:
    try:
        return await request
    except nats.js.errors.NotFoundError:
        raise
    except _UNAVAILABLE as exc:
        raise _unavailable(settings, doing, exc) from None
    except nats.js.errors.APIError as exc:
        raise _unavailable(settings, doing, exc) from None


def _unavailable(settings: NatsSettings, doing: str, exc: BaseException) -> NatsUnavailableError:
    if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        reason = "jetstream is not enabled or not responding"
    elif isinstance(exc, TimeoutError):
        reason = "timed out"
    elif isinstance(exc, nats.js.errors.APIError) and exc.description:
        reason = f"{exc.description} (err_code {exc.err_code})"
    else:
        reason = str(exc) or type(exc).__name__
    return NatsUnavailableError(settings.url, f"{doing}: {reason}")
