"""Read-only JetStream look-ups that tell "missing" apart from "unreachable".

A stream or consumer that does not exist is ``None``; a server that does not answer (refused,
timed out, JetStream disabled) is :class:`NatsUnavailableError`; any other API error is a
:class:`ProvisioningError` carrying the server's description. "Any error means missing" was the
seed's bug. Nothing here changes the server.
"""

from __future__ import annotations

from typing import Final

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe, display_url
from ponix_nats.errors import NatsUnavailableError, ProvisioningError

# JetStream error codes (server/errors.json) that mean "not there" and nothing else.
STREAM_NOT_FOUND: Final = 10059
CONSUMER_NOT_FOUND: Final = 10014


async def stream_info(
    js: JetStreamContext, settings: NatsSettings, stream: str
) -> StreamInfo | None:
    """``stream``'s info, or ``None`` when it does not exist; ``settings`` name the server in
    errors."""
    try:
        return await js.stream_info(stream)
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code in (STREAM_NOT_FOUND, None):
            return None
        raise unexpected_api_error(stream, exc) from None
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable(settings, f"stream info {stream}", exc) from None
    except nats.js.errors.APIError as exc:
        raise unexpected_api_error(stream, exc) from None


async def consumer_info(
    js: JetStreamContext, settings: NatsSettings, stream: str, consumer: str
) -> ConsumerInfo | None:
    """The durable ``consumer``'s info, or ``None`` when it (or its stream) does not exist."""
    try:
        info: ConsumerInfo = await js.consumer_info(stream, consumer)
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND, None):
            return None
        raise unexpected_api_error(stream, exc, consumer=consumer) from None
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable(settings, f"consumer info {stream}/{consumer}", exc) from None
    except nats.js.errors.APIError as exc:
        raise unexpected_api_error(stream, exc, consumer=consumer) from None
    return info


def describe_api_error(exc: nats.js.errors.APIError) -> str:
    """The server's description of a JetStream API error, with its ``err_code``; one line."""
    text = exc.description or describe(exc)
    code = f" (err_code {exc.err_code})" if exc.err_code else ""
    return f"{text}{code}"


def unavailable(settings: NatsSettings, doing: str, exc: BaseException) -> NatsUnavailableError:
    """``exc``, met while ``doing`` something, as the server not answering."""
    url = display_url(settings)
    if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        return NatsUnavailableError(url, f"{doing}: jetstream not enabled or not responding")
    if isinstance(exc, TimeoutError):
        return NatsUnavailableError(url, f"{doing}: timed out")
    return NatsUnavailableError(url, f"{doing}: {describe(exc)}")


def unexpected_api_error(
    stream: str, exc: nats.js.errors.APIError, *, consumer: str | None = None
) -> ProvisioningError:
    return ProvisioningError(stream, [], describe_api_error(exc), consumer=consumer)
