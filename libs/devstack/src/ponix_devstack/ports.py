"""Loopback port choice for child servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Mapping

from ponix_devstack.errors import PortInUseError, ServerNotStartedError, ServerStartFailedError

LOOPBACK = "127.0.0.1"
# Attempts of a first start whose free ports were taken by someone else in the meantime.
_PORT_RACE_ATTEMPTS = 3

_lock = threading.Lock()
# Ports handed out by free_port in this process: the OS may offer a port again as soon as our
# probe socket closes, and two servers of one stack must not be given the same one.
_handed_out: set[int] = set()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on now and that this process has not handed out.

    The port is free when this returns, not reserved: the server that binds it should be started
    soon, and a start that loses the race is retried on new ports by the servers themselves.
    """
    with _lock:
        for _ in range(64):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port: int = probe.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    msg = f"no free TCP port on {host} after 64 tries"
    raise OSError(msg)


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind ``host:port`` now.

    SO_REUSEADDR mirrors what nats-server and ClickHouse set, so a port held only by sockets in
    TIME_WAIT (a server we just stopped) counts as free, as it is for them.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class PortSet:
    """The named ports of one server: chosen at its first start, then kept for every restart.

    A wanted port of ``None`` (or 0) means any free loopback port. Keeping the ports is what
    lets a client reconnect to the same URL after a stop/kill and start.
    """

    def __init__(self, server: str, wanted: Mapping[str, int | None]) -> None:
        self.server = server
        self._wanted = {name: port or None for name, port in wanted.items()}
        self._chosen: dict[str, int] = {}

    @property
    def chosen(self) -> bool:
        return bool(self._chosen)

    def __getitem__(self, name: str) -> int:
        try:
            return self._chosen[name]
        except KeyError:
            raise ServerNotStartedError(self.server, name) from None

    def choose(self) -> None:
        """Pick the missing ports; raise :class:`PortInUseError` if one is taken now."""
        for name, wanted in self._wanted.items():
            if name not in self._chosen:
                self._chosen[name] = wanted if wanted is not None else free_port()
        for port in self._chosen.values():
            if not port_is_free(port):
                raise PortInUseError(self.server, LOOPBACK, port)

    def forget(self) -> None:
        self._chosen.clear()

    def start(self, spawn_and_wait: Callable[[], None]) -> None:
        """Run ``spawn_and_wait`` on these ports.

        On a first start, free ports can be taken by another process between our probe and the
        server's bind; that start is retried on new ports. Later starts keep their ports (the
        URL must not change), so they are not retried.
        """
        first = not self.chosen
        attempts = _PORT_RACE_ATTEMPTS if first else 1
        for attempt in range(1, attempts + 1):
            self.choose()
            try:
                spawn_and_wait()
            except ServerStartFailedError as err:
                if first:
                    self.forget()
                if attempt < attempts and "address already in use" in err.log_tail.lower():
                    continue
                raise
            except BaseException:
                if first:
                    self.forget()
                raise
            return
