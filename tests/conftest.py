"""Fixtures shared by the whole suite.

Servers
-------
Real NATS (JetStream) and ClickHouse, one of each per session, started lazily: only when a test
asks for one, so unit tests never start a server. Each server comes from the first of:

1. ``PONIX_TEST_NATS_URL`` / ``PONIX_TEST_CLICKHOUSE_URL``: a server you run yourself. These are
   dedicated names on purpose, not ``NATS_URL``/``CLICKHOUSE_URL``: the suite creates and drops
   streams and databases, and a URL exported for ``ponix run`` must never become a test target.
2. ``PONIX_TEST_DOCKER=1``: testcontainers with the images in ``ponix_devstack.images``. It fails
   (does not fall back) when no Docker engine answers: you asked for Docker.
3. Otherwise: local ``nats-server`` and ``clickhouse-server`` processes from ``ponix_devstack``,
   with their stores in the session's temp dir (kept by pytest for the last 3 runs, logs included).

``nats_url`` / ``clickhouse_url`` work with all three. ``nats_server`` / ``clickhouse_server`` hand
out the local server objects for fault tests (kill, restart, pause, readonly users) and skip
otherwise; after each such test the shared server is put back (resumed, restarted, users reset).
Tests that want a server of their own (other config, or to wreck it) use the ``*_factory``
fixtures, which always run local processes.

Isolation
---------
Servers are shared, so every test names its own resources: ``unique`` is a short random name
(valid as a stream, consumer or database name) and ``clickhouse_db`` is a database created for
the test and dropped after it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import uuid4

import pytest
from clickhouse_driver import Client

from ponix_devstack import (
    ClickHouseContainer,
    ClickHouseServer,
    ClickHouseUser,
    DockerUnavailableError,
    NatsContainer,
    NatsServer,
    docker_available,
)

ServerT = TypeVar("ServerT", NatsServer, ClickHouseServer)

# --------------------------------------------------------------------------------------------
# Where the servers come from
# --------------------------------------------------------------------------------------------

NATS_URL_ENV = "PONIX_TEST_NATS_URL"
CLICKHOUSE_URL_ENV = "PONIX_TEST_CLICKHOUSE_URL"
DOCKER_ENV = "PONIX_TEST_DOCKER"

Backend = Literal["external", "docker", "local"]

# Fixtures that start (or hand out) a server; tests under tests/unit must not use them.
SERVER_FIXTURES = frozenset(
    {
        "nats_target",
        "clickhouse_target",
        "nats_url",
        "clickhouse_url",
        "nats_server",
        "clickhouse_server",
        "nats_server_factory",
        "clickhouse_server_factory",
        "clickhouse_db",
    }
)


@dataclass(frozen=True, slots=True)
class NatsTarget:
    """The session's NATS: where it came from, its URL, and the process when it is local."""

    backend: Backend
    url: str
    server: NatsServer | None = None


@dataclass(frozen=True, slots=True)
class ClickHouseTarget:
    """The session's ClickHouse; ``users`` is what fault tests are reset to afterwards."""

    backend: Backend
    url: str
    server: ClickHouseServer | None = None
    users: tuple[ClickHouseUser, ...] = ()


def _backend(url_env: str) -> Backend:
    if os.environ.get(url_env, "").strip():
        return "external"
    if os.environ.get(DOCKER_ENV, "").strip() == "1":
        if not docker_available():
            reason = f"{DOCKER_ENV}=1 but no Docker engine answers; unset it to use local servers"
            raise DockerUnavailableError(reason)
        return "docker"
    return "local"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit_dir = Path(str(config.rootpath)) / "tests" / "unit"
    offenders = [
        item.nodeid
        for item in items
        if item.path.is_relative_to(unit_dir)
        and SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
    ]
    if offenders:
        msg = "unit tests must not use server fixtures (move them to tests/integration): "
        raise pytest.UsageError(msg + ", ".join(offenders))


@pytest.fixture(scope="session")
def devstack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the session's local server stores and logs."""
    return tmp_path_factory.mktemp("devstack")


@pytest.fixture(scope="session")
def nats_target(devstack_dir: Path) -> Iterator[NatsTarget]:
    backend = _backend(NATS_URL_ENV)
    if backend == "external":
        yield NatsTarget("external", os.environ[NATS_URL_ENV].strip())
    elif backend == "docker":
        with NatsContainer() as container:
            yield NatsTarget("docker", container.url)
    else:
        with NatsServer(devstack_dir / "nats") as server:
            yield NatsTarget("local", server.url, server)


@pytest.fixture(scope="session")
def clickhouse_target(devstack_dir: Path) -> Iterator[ClickHouseTarget]:
    backend = _backend(CLICKHOUSE_URL_ENV)
    if backend == "external":
        yield ClickHouseTarget("external", os.environ[CLICKHOUSE_URL_ENV].strip())
    elif backend == "docker":
        with ClickHouseContainer() as container:
            yield ClickHouseTarget("docker", container.url)
    else:
        with ClickHouseServer(devstack_dir / "clickhouse") as server:
            yield ClickHouseTarget("local", server.url, server, server.users)


@pytest.fixture(scope="session")
def nats_url(nats_target: NatsTarget) -> str:
    """``nats://host:port`` of the session's NATS (JetStream enabled)."""
    return nats_target.url


@pytest.fixture(scope="session")
def clickhouse_url(clickhouse_target: ClickHouseTarget) -> str:
    """``clickhouse://user[:password]@host:port/`` of the session's ClickHouse (native port)."""
    return clickhouse_target.url


def _put_back_nats(server: NatsServer) -> None:
    if server.is_paused:
        server.resume()
    if not server.is_running:
        server.start()


def _put_back_clickhouse(target: ClickHouseTarget) -> None:
    server = target.server
    if server is None:
        return
    if server.is_paused:
        server.resume()
    if not server.is_running:
        server.start()
    if server.users != target.users:
        server.set_users(target.users)


@pytest.fixture
def nats_server(nats_target: NatsTarget) -> Iterator[NatsServer]:
    """The session's local NatsServer, for tests that stop, kill or pause it.

    It is running again (same URL, same store) after the test, whatever the test did.
    """
    if nats_target.server is None:
        pytest.skip(f"needs the local nats-server; this session uses {nats_target.backend}")
    yield nats_target.server
    _put_back_nats(nats_target.server)


@pytest.fixture
def clickhouse_server(clickhouse_target: ClickHouseTarget) -> Iterator[ClickHouseServer]:
    """The session's local ClickHouseServer, for tests that stop, kill, pause it or change users.

    After the test it is running again with the session's users (same URL, same data).
    """
    if clickhouse_target.server is None:
        pytest.skip(f"needs the local ClickHouse; this session uses {clickhouse_target.backend}")
    yield clickhouse_target.server
    _put_back_clickhouse(clickhouse_target)


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Callable[..., NatsServer]]:
    """``make(start=True, **NatsServer options)``: a NatsServer of the test's own, stopped after."""
    yield from _server_factory(NatsServer, tmp_path / "nats")


@pytest.fixture
def clickhouse_server_factory(tmp_path: Path) -> Iterator[Callable[..., ClickHouseServer]]:
    """``make(start=True, **ClickHouseServer options)``: a server of its own, stopped after."""
    yield from _server_factory(ClickHouseServer, tmp_path / "clickhouse")


def _server_factory(
    server_type: Callable[..., ServerT], prefix: Path
) -> Iterator[Callable[..., ServerT]]:
    """Yield ``make(start=True, **options)``, each server in ``<prefix>-<n>``; stop them all,
    newest first, once the fixture ends."""
    servers: list[ServerT] = []

    def make(*, start: bool = True, **options: Any) -> ServerT:
        server = server_type(Path(f"{prefix}-{len(servers)}"), **options)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in reversed(servers):
        server.stop()


# --------------------------------------------------------------------------------------------
# Per-test isolation
# --------------------------------------------------------------------------------------------


@pytest.fixture
def unique() -> str:
    """A short random name, e.g. ``t3f9a0c1d``: a valid stream, consumer, subject token and
    ClickHouse identifier. Prefix or suffix it to name the test's own resources."""
    return f"t{uuid4().hex[:8]}"


@pytest.fixture
def clickhouse_db(clickhouse_target: ClickHouseTarget, unique: str) -> Iterator[str]:
    """The name of a database created for this test and dropped after it."""
    name = f"test_{unique}"
    client = Client.from_url(clickhouse_target.url)
    try:
        client.execute(f"CREATE DATABASE {name}")
    finally:
        client.disconnect()
    yield name
    # A fault test may have left the shared server down; put it back before dropping.
    _put_back_clickhouse(clickhouse_target)
    client = Client.from_url(clickhouse_target.url)
    try:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
    finally:
        client.disconnect()


# --------------------------------------------------------------------------------------------
# Pipeline fixtures (settings, producers, ingesters) go below, built on the ones above.
# --------------------------------------------------------------------------------------------
