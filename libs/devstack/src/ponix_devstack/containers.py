"""NATS and ClickHouse in Docker via testcontainers, for machines that prefer images.

testcontainers is a dev-only dependency, imported when a container is started. Readiness uses
the same probes as local processes (:mod:`ponix_devstack.readiness`), so "ready" means the
same thing whichever way a server was started.
"""

from __future__ import annotations

import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

from ponix_devstack.errors import DockerUnavailableError, ServerStartFailedError
from ponix_devstack.images import clickhouse_image, nats_image
from ponix_devstack.nats import NatsConfig
from ponix_devstack.readiness import Readiness, probe_clickhouse, probe_nats, wait_until_ready

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

_NATS_PORT = 4222
_NATS_MONITOR_PORT = 8222
_CLICKHOUSE_TCP_PORT = 9000
_CLICKHOUSE_HTTP_PORT = 8123
_NATS_CONFIG_PATH = "/etc/nats/ponix.conf"
# Inside the container only; the host reaches it through the published ports.
_ALL_INTERFACES = "0.0.0.0"  # noqa: S104
# A throwaway container's login, published on loopback only for the test run.
_CONTAINER_PASSWORD = "ponix"  # noqa: S105


def docker_available(timeout: float = 3.0) -> bool:
    """Whether testcontainers is installed and a Docker engine answers a ping."""
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError:
        return False
    if not _local_socket_answers(timeout):
        return False
    try:
        client = DockerClient(timeout=timeout)
        client.client.ping()
        client.client.close()
    # docker-py raises DockerException, requests' errors or OSError depending on the transport.
    except Exception:  # noqa: BLE001
        return False
    return True


def _local_socket_answers(timeout: float) -> bool:
    """For a unix-socket engine (the default), check the socket ourselves first: docker-py leaks
    a socket (a ResourceWarning, an error under pytest) when the engine is not there."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host and not host.startswith("unix://"):
        return True  # tcp:// or ssh://: let docker-py try
    path = host.removeprefix("unix://") if host else "/var/run/docker.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def _new_container(image: str) -> DockerContainer:
    try:
        from testcontainers.core.container import DockerContainer
    except ImportError as err:
        reason = "testcontainers is not installed (it is in the dev group: `uv sync`)"
        raise DockerUnavailableError(reason) from err
    if not docker_available():
        raise DockerUnavailableError("no Docker engine answers (is the daemon running?)")
    return DockerContainer(image)


def _start(container: DockerContainer, image: str) -> None:
    """Run ``container``; an image the engine has not got and cannot pull is a one-line error."""
    from docker.errors import APIError

    try:
        container.start()
    except APIError as err:
        explanation = str(err.explanation or err).strip().splitlines()[0]
        if "ryuk" in str(err):
            reason = (
                "testcontainers' reaper image (testcontainers/ryuk) is not available; pull it, or "
                "set TESTCONTAINERS_RYUK_DISABLED=true (the fixtures remove their containers "
                f"themselves): {explanation}"
            )
        else:
            reason = (
                f"cannot run {image} ({explanation}); pull it, or name another image with "
                "NATS_IMAGE / CLICKHOUSE_IMAGE"
            )
        raise DockerUnavailableError(reason) from err


class _Container(ABC):
    """A started container with published ports; stop() removes it."""

    server = "container"

    def __init__(self, image: str, ready_timeout: float) -> None:
        self.image = image
        self.ready_timeout = ready_timeout
        self._container: DockerContainer | None = None
        self._host = ""

    @property
    def host(self) -> str:
        self._started()
        return self._host

    def _started(self) -> DockerContainer:
        if self._container is None:
            msg = f"{self.server} container is not started"
            raise DockerUnavailableError(msg)
        return self._container

    def _port(self, port: int) -> int:
        return int(self._started().get_exposed_port(port))

    def _check_alive(self) -> None:
        container = self._started()
        container.reload()
        status = container.status
        if status in ("exited", "dead"):
            raise ServerStartFailedError(self.server, None, self._logs(), ())

    def _logs(self) -> str:
        try:
            out, err = self._started().get_logs()
        except Exception:  # noqa: BLE001 - logs are best effort while reporting another error
            return ""
        text = (out + err).decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-40:])

    def stop(self) -> None:
        """Remove the container (and its anonymous volumes)."""
        container, self._container = self._container, None
        if container is not None:
            container.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> Self:
        """Run the container and wait until the server in it is ready."""

    def _run_until_ready(
        self, container: DockerContainer, probe: Callable[[float], Readiness]
    ) -> None:
        """Start ``container`` and probe it until ready; any failure removes it."""
        self._container = container
        try:
            _start(container, self.image)
            self._host = container.get_container_host_ip()
            wait_until_ready(
                probe,
                server=self.server,
                timeout=self.ready_timeout,
                check_alive=self._check_alive,
                log_tail=self._logs,
                on_timeout=self.stop,
            )
        except BaseException:
            self.stop()
            raise


class NatsContainer(_Container):
    """NATS (``$NATS_IMAGE``, else ``nats:2.11-alpine``) with the devstack's config: JetStream,
    ``sync_interval: always``."""

    server = "nats container"

    def __init__(self, image: str | None = None, *, ready_timeout: float = 120.0) -> None:
        super().__init__(image or nats_image(), ready_timeout)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self._port(_NATS_PORT)}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self._port(_NATS_MONITOR_PORT)}"

    def start(self) -> Self:
        if self._container is not None:
            return self
        config = NatsConfig(
            host=_ALL_INTERFACES,
            port=_NATS_PORT,
            monitor_host=_ALL_INTERFACES,
            monitor_port=_NATS_MONITOR_PORT,
            store_dir="/data",
        )
        container = (
            _new_container(self.image)
            .with_exposed_ports(_NATS_PORT, _NATS_MONITOR_PORT)
            .with_copy_into_container(config.render().encode(), _NATS_CONFIG_PATH)
            .with_command(["--config", _NATS_CONFIG_PATH])
        )
        self._run_until_ready(
            container,
            lambda budget: probe_nats(
                self.host,
                self._port(_NATS_PORT),
                self._port(_NATS_MONITOR_PORT),
                jetstream=True,
                timeout=budget,
            ),
        )
        return self


class ClickHouseContainer(_Container):
    """ClickHouse (``$CLICKHOUSE_IMAGE``, else ``clickhouse/clickhouse-server:25.8``) with a
    password user (the image requires one for access from outside the container)."""

    server = "clickhouse container"

    def __init__(
        self,
        image: str | None = None,
        *,
        user: str = "ponix",
        password: str = _CONTAINER_PASSWORD,
        ready_timeout: float = 120.0,
    ) -> None:
        super().__init__(image or clickhouse_image(), ready_timeout)
        self.user = user
        self.password = password

    @property
    def url(self) -> str:
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"clickhouse://{auth}@{self.host}:{self._port(_CLICKHOUSE_TCP_PORT)}/"

    def start(self) -> Self:
        if self._container is not None:
            return self
        container = (
            _new_container(self.image)
            .with_exposed_ports(_CLICKHOUSE_TCP_PORT, _CLICKHOUSE_HTTP_PORT)
            .with_env("CLICKHOUSE_USER", self.user)
            .with_env("CLICKHOUSE_PASSWORD", self.password)
            .with_env("TZ", "UTC")
        )
        self._run_until_ready(
            container,
            lambda budget: probe_clickhouse(
                self.host,
                self._port(_CLICKHOUSE_HTTP_PORT),
                self._port(_CLICKHOUSE_TCP_PORT),
                user=self.user,
                password=self.password,
                timeout=budget,
            ),
        )
        return self
