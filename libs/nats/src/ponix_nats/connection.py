"""One NATS connection per service: auth, TLS, reconnects, and a first connect that fails fast.

nats-py's own ``connect`` retries an unreachable server forever when reconnects are unlimited,
and retries a rejected password as if the network were at fault. Our error callback cuts the
*first* connect short instead: once every server has been tried, or on the first rejection
of our credentials. Reconnects after that follow ``NATS_MAX_RECONNECT_ATTEMPTS``.

TLS, when required (``NatsSettings.tls_required``), comes before any credential on every
connection, reconnects included. nats-py upgrades to TLS only when the server's INFO asks for
it, and otherwise sends CONNECT, credentials and all, in the clear: to a server without TLS, or
to a man-in-the-middle that strips ``tls_required``. So either the handshake comes first
(``NATS_TLS_HANDSHAKE_FIRST``, for servers set up with ``handshake_first``), or the INFO of a
server that does not require TLS is refused before CONNECT is written.

Each connection keeps its ``ponix_nats_up``, ``ponix_nats_disconnects_total`` and
``ponix_nats_reconnects_total`` series (label ``client``: the connection's name) from nats-py's
callbacks, then calls the caller's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from pydantic import SecretStr

from ponix_config import NatsSettings, split_credentials
from ponix_nats.errors import NatsAuthError, NatsTlsError, NatsUnavailableError, one_line
from ponix_telemetry import metrics

log = logging.getLogger(__name__)

ErrorCallback = Callable[[Exception], Awaitable[None]]
Callback = Callable[[], Awaitable[None]]

# A dead TCP peer is noticed after PING_INTERVAL * (MAX_OUTSTANDING_PINGS + 1) seconds; nats-py's
# default (120 s, 2) leaves a consumer blind for six minutes.
PING_INTERVAL: Final = 20
MAX_OUTSTANDING_PINGS: Final = 2
RECONNECT_TIME_WAIT: Final = 2
_CLOSE_TIMEOUT: Final = 1.0

# Errors that mean "the server is not there right now", never "the thing is missing".
UNAVAILABLE_ERRORS: Final = (
    asyncio.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
)

_AUTH_MARKERS: Final = ("authorization violation", "authentication", "user credentials")


class _FirstConnectAbortedError(Exception):
    """Raised from the error callback to stop nats-py's first-connect retry loop."""

    def __init__(self, cause: Exception, *, auth: bool = False, tls: bool = False) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.auth = auth
        self.tls = tls


class _PlaintextServerError(nats.errors.Error):
    """The server's INFO does not require TLS while we do: nothing more is written to it.

    A ``nats.errors.Error``, so nats-py treats it as a failed attempt: the first connect reports
    it, a reconnect tries the next server.
    """

    def __str__(self) -> str:
        return "the server does not offer TLS; refusing to send credentials in the clear"


class _TlsOnlyClient(Client):
    """A client that refuses, before CONNECT, any server whose INFO does not require TLS.

    ``_process_info`` with ``initial_connection=True`` is the one step between reading a
    connection's INFO and writing its CONNECT; nats-py has no public hook there.
    """

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        if initial_connection and not info.get("tls_required", False):
            raise _PlaintextServerError
        await super()._process_info(info, initial_connection=initial_connection)


class _ErrorRouter:
    """nats-py's ``error_cb``: structured logs instead of tracebacks on stderr, and the
    first-connect cut-off described in the module docstring."""

    def __init__(self, url: str, servers: int, forward: ErrorCallback | None) -> None:
        self._url = url
        self._servers = servers
        self._forward = forward
        self._failed_attempts = 0
        self.connecting = True

    async def handle(self, exc: Exception) -> None:
        if self.connecting:
            self._during_first_connect(exc)
            return
        log.warning(
            "nats client error",
            extra={"url": self._url, "error": describe(exc), "error_type": type(exc).__name__},
        )
        if self._forward is not None:
            await self._forward(exc)

    def _during_first_connect(self, exc: Exception) -> None:
        log.debug(
            "nats connect attempt failed",
            extra={"url": self._url, "error": describe(exc), "error_type": type(exc).__name__},
        )
        if is_auth_error(exc):
            self.connecting = False
            raise _FirstConnectAbortedError(exc, auth=True)
        if isinstance(exc, _PlaintextServerError):
            self.connecting = False
            raise _FirstConnectAbortedError(exc, tls=True)
        self._failed_attempts += 1
        if self._failed_attempts >= self._servers:
            self.connecting = False
            raise _FirstConnectAbortedError(exc, auth=False)


class _ConnectionMetrics:
    """nats-py's connection callbacks: this connection's series first, then the caller's."""

    def __init__(
        self,
        nc: Client,
        name: str,
        disconnected: Callback | None,
        reconnected: Callback | None,
        closed: Callback | None,
    ) -> None:
        self._nc = nc
        self._metrics = metrics.NatsClientMetrics(name)
        self._disconnected = disconnected
        self._reconnected = reconnected
        self._closed = closed
        self._metrics.up.set(0)

    def connected(self) -> None:
        self._metrics.up.set(1)

    async def disconnected(self) -> None:
        self._metrics.up.set(0)
        # nats-py calls this on close() too (the client is closed by then): not a loss.
        if not self._nc.is_closed:
            self._metrics.disconnects.inc()
        if self._disconnected is not None:
            await self._disconnected()

    async def reconnected(self) -> None:
        self._metrics.up.set(1)
        self._metrics.reconnects.inc()
        if self._reconnected is not None:
            await self._reconnected()

    async def closed(self) -> None:
        self._metrics.up.set(0)
        if self._closed is not None:
            await self._closed()


def describe(exc: BaseException) -> str:
    """A one-line description of ``exc`` without nats-py's ``nats:`` prefix; the server's own
    quoted errors (``'Authorization Violation'``) in lowercase."""
    text = one_line(exc).removeprefix("nats: ")
    if not text:
        return type(exc).__name__
    if len(text) > 1 and text[0] == text[-1] == "'":
        return text[1:-1].lower()
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def is_auth_error(exc: BaseException) -> bool:
    if isinstance(exc, nats.errors.AuthorizationError | nats.errors.InvalidUserCredentialsError):
        return True
    text = str(exc).lower()
    return isinstance(exc, nats.errors.Error) and any(m in text for m in _AUTH_MARKERS)


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """A client TLS context (the CA file, else the system's CAs; the client certificate), or
    None when TLS is not required."""
    if not settings.tls_required:
        return None
    ctx = ssl.create_default_context(
        cafile=str(settings.tls_ca_file) if settings.tls_ca_file is not None else None
    )
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        ctx.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    return ctx


def display_url(settings: NatsSettings) -> str:
    """The server list as it may appear in logs and errors: never with credentials."""
    return ",".join(split_credentials(u).url for u in settings.servers)


async def connect(
    settings: NatsSettings,
    *,
    name: str,
    error_cb: ErrorCallback | None = None,
    disconnected_cb: Callback | None = None,
    reconnected_cb: Callback | None = None,
    closed_cb: Callback | None = None,
    discovered_server_cb: Callback | None = None,
    lame_duck_mode_cb: Callback | None = None,
    trusted_subjects: bool = False,
) -> Client:
    """Connect to ``settings.servers`` as client ``name``.

    ``trusted_subjects`` turns off nats-py's check of every subject published on (a regular
    expression per publish, 0.3 µs: 2% of the ingester's CPU, where each ack is a publish). Only
    for a client whose subjects all come from the server (reply subjects: acks, pull requests'
    answers) or from settings validated at load (stream, consumer, DLQ subject): the check
    guards against CR/LF smuggled into a subject from outside.

    Every server is tried once, each attempt bounded by ``connect_timeout``. None accepting
    raises :class:`NatsUnavailableError`; the first credential rejection raises
    :class:`NatsAuthError`. Once connected, dropped connections are retried in the background
    (``max_reconnect_attempts``, -1 forever) and client errors are logged, then forwarded to
    ``error_cb``.
    """
    url = display_url(settings)
    _check_credential_files(settings, url)
    router = _ErrorRouter(url, len(settings.servers), error_cb)
    tls = tls_context(settings)
    # With the handshake first, nothing is read or written in the clear to begin with; wss://
    # is TLS below the NATS protocol (nats-py takes either nats/tls or ws/wss URLs, not both).
    guard = not settings.tls_handshake_first and not settings.servers[0].startswith("wss://")
    nc = _TlsOnlyClient() if tls is not None and guard else Client()
    state = _ConnectionMetrics(nc, name, disconnected_cb, reconnected_cb, closed_cb)
    # nats-py bounds each step by connect_timeout; this outer bound is the sum of the attempts
    # plus slack, in case one step (a TLS handshake) ignores it.
    budget = settings.connect_timeout * (len(settings.servers) + 1)
    try:
        async with asyncio.timeout(budget):
            await nc.connect(
                servers=settings.servers,
                name=name,
                error_cb=router.handle,
                disconnected_cb=state.disconnected,
                reconnected_cb=state.reconnected,
                closed_cb=state.closed,
                discovered_server_cb=discovered_server_cb,
                lame_duck_mode_cb=lame_duck_mode_cb,
                allow_reconnect=True,
                connect_timeout=settings.connect_timeout,  # type: ignore[arg-type]
                reconnect_time_wait=RECONNECT_TIME_WAIT,
                max_reconnect_attempts=settings.max_reconnect_attempts,
                ping_interval=PING_INTERVAL,
                max_outstanding_pings=MAX_OUTSTANDING_PINGS,
                tls=tls,
                tls_handshake_first=settings.tls_handshake_first,
                user=settings.user,
                password=_secret(settings.password),
                token=_secret(settings.token),
                user_credentials=_path(settings.creds_file),
                nkeys_seed=_path(settings.nkey_seed_file),
                skip_subject_validation=trusted_subjects,
            )
    except _FirstConnectAbortedError as aborted:
        await _close_quietly(nc)
        if aborted.auth:
            raise NatsAuthError(url, describe(aborted.cause)) from None
        if aborted.tls:
            raise NatsTlsError(url, describe(aborted.cause)) from None
        raise NatsUnavailableError(url, describe(aborted.cause)) from None
    except TimeoutError:
        router.connecting = False
        await _close_quietly(nc)
        raise NatsUnavailableError(url, f"no answer within {budget:g}s") from None
    except BaseException as exc:
        router.connecting = False
        await _close_quietly(nc)
        if isinstance(exc, nats.errors.Error | OSError):
            if is_auth_error(exc):
                raise NatsAuthError(url, describe(exc)) from None
            raise NatsUnavailableError(url, describe(exc)) from None
        raise
    router.connecting = False
    state.connected()
    log.info("nats connected", extra={"url": url, "client_name": name})
    return nc


async def _close_quietly(nc: Client) -> None:
    # After a failed TLS handshake asyncio's wait_closed() never returns (the socket is
    # already closed by then), and nats-py's close() awaits it unbounded.
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await nc.close()
    except TimeoutError:
        log.debug("nats close after failed connect timed out")
    except Exception as exc:  # noqa: BLE001 - the connect error is the one worth reporting
        log.debug("nats close after failed connect", extra={"error": describe(exc)})


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def _check_credential_files(settings: NatsSettings, url: str) -> None:
    for label, path in (
        ("creds file", settings.creds_file),
        ("nkey seed file", settings.nkey_seed_file),
    ):
        if path is not None and not path.is_file():
            raise NatsAuthError(url, f"{label} {path} is not a readable file")
