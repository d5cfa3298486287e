"""The telemetry lib's errors: one root, one subclass per way serving health and metrics fails.

``code`` is stable and ``str()`` is one line (``code: message``), so ``run_main`` prints it as the
reason a service exits (``error: telemetry.port_in_use: ...``, exit 1) instead of a traceback.
"""

from __future__ import annotations

import errno as errnos
import socket

__all__ = ("ListenError", "PortInUseError", "TelemetryError")


class TelemetryError(Exception):
    """Root of every error this lib raises; ``code`` is stable, ``str()`` is one line."""

    code = "telemetry.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ListenError(TelemetryError, OSError):
    """``/metrics`` and the health endpoints cannot listen on ``host:port`` (HTTP_HOST,
    HTTP_PORT). An ``OSError``, with the bind's ``errno`` when it had one."""

    code = "telemetry.listen_failed"

    def __init__(self, host: str, port: int, reason: str, *, errno: int | None = None) -> None:
        super().__init__(f"cannot serve /metrics and health on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.errno = errno


class PortInUseError(ListenError):
    """Another process (a second service, a ``ponix dev``) already listens on the port."""

    code = "telemetry.port_in_use"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            host,
            port,
            "the port is in use; set HTTP_PORT to a free port (0 picks one)",
            errno=errnos.EADDRINUSE,
        )


def listen_error(host: str, port: int, error: OSError) -> ListenError:
    """The typed error for a failed bind of ``host:port``."""
    if isinstance(error, socket.gaierror):
        return ListenError(host, port, f"HTTP_HOST does not resolve ({error.strerror})")
    if error.errno == errnos.EADDRINUSE:
        return PortInUseError(host, port)
    if error.errno == errnos.EADDRNOTAVAIL:
        reason = "the address is not on this host; set HTTP_HOST to one of its addresses"
    elif error.errno == errnos.EACCES:
        reason = "permission denied (ports below 1024 need privileges); set HTTP_PORT higher"
    else:
        reason = (error.strerror or str(error)).lower()
    return ListenError(host, port, reason, errno=error.errno)
