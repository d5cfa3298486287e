"""Real nats-server and ClickHouse child processes for tests, ``ponix dev`` and the benchmark.

:class:`NatsServer` and :class:`ClickHouseServer` run the installed binaries on free loopback
ports with their stores under a directory you give; :class:`LocalStack` runs both. Each
``start()`` waits for readiness under a deadline, each ``stop()`` is SIGTERM then SIGKILL, and
both restart on the same store and ports. :class:`NatsContainer` and
:class:`ClickHouseContainer` do the same with the images in :mod:`ponix_devstack.images`.

Children never outlive us: they are stopped by ``stop()``/``__exit__``, then by an atexit hook,
and on Linux the kernel sends them SIGTERM when the *thread* that started them ends
(PR_SET_PDEATHSIG). So call ``start()`` from the main thread or a thread that lives as long as
the servers should, not from a short-lived worker. ``start()`` blocks (well under a second here).
"""

from ponix_devstack.binaries import (
    CLICKHOUSE_ENV,
    NATS_SERVER_ENV,
    ClickHouseBinary,
    find_clickhouse,
    find_nats_server,
)
from ponix_devstack.clickhouse import ClickHouseServer
from ponix_devstack.clickhouse_config import ClickHouseUser
from ponix_devstack.containers import ClickHouseContainer, NatsContainer, docker_available
from ponix_devstack.errors import (
    BinaryNotFoundError,
    ClickHouseNotFoundError,
    DevstackError,
    DockerUnavailableError,
    NatsServerNotFoundError,
    PortInUseError,
    QueryFailedError,
    ServerNotReadyError,
    ServerNotStartedError,
    ServerStartFailedError,
    UsersNotReloadedError,
)
from ponix_devstack.images import (
    CLICKHOUSE_IMAGE,
    CLICKHOUSE_IMAGE_ENV,
    NATS_IMAGE,
    NATS_IMAGE_ENV,
    clickhouse_image,
    nats_image,
)
from ponix_devstack.nats import DEFAULT_MAX_PAYLOAD, NatsServer, NatsTls
from ponix_devstack.ports import LOOPBACK, free_port, port_is_free
from ponix_devstack.stack import LocalStack, StackPorts

__all__ = (
    "CLICKHOUSE_ENV",
    "CLICKHOUSE_IMAGE",
    "CLICKHOUSE_IMAGE_ENV",
    "DEFAULT_MAX_PAYLOAD",
    "LOOPBACK",
    "NATS_IMAGE",
    "NATS_IMAGE_ENV",
    "NATS_SERVER_ENV",
    "BinaryNotFoundError",
    "ClickHouseBinary",
    "ClickHouseContainer",
    "ClickHouseNotFoundError",
    "ClickHouseServer",
    "ClickHouseUser",
    "DevstackError",
    "DockerUnavailableError",
    "LocalStack",
    "NatsContainer",
    "NatsServer",
    "NatsServerNotFoundError",
    "NatsTls",
    "PortInUseError",
    "QueryFailedError",
    "ServerNotReadyError",
    "ServerNotStartedError",
    "ServerStartFailedError",
    "StackPorts",
    "UsersNotReloadedError",
    "clickhouse_image",
    "docker_available",
    "find_clickhouse",
    "find_nats_server",
    "free_port",
    "nats_image",
    "port_is_free",
)
