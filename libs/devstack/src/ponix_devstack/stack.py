"""nats-server and ClickHouse together: the embedded stack of ``ponix dev`` and the benchmark."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from ponix_devstack.clickhouse import ClickHouseServer
from ponix_devstack.clickhouse_config import ClickHouseUser
from ponix_devstack.nats import NatsServer
from ponix_devstack.ports import port_is_free


@dataclass(frozen=True, slots=True)
class StackPorts:
    """The four ports of a stack; ``None`` means any free loopback port (the default)."""

    nats: int | None = None
    nats_monitor: int | None = None
    clickhouse_tcp: int | None = None
    clickhouse_http: int | None = None

    @classmethod
    def standard(cls) -> StackPorts:
        """Exactly the servers' well-known ports; starting fails if one is taken."""
        return cls(nats=4222, nats_monitor=8222, clickhouse_tcp=9000, clickhouse_http=8123)

    @classmethod
    def prefer_standard(cls) -> StackPorts:
        """Each well-known port that is free right now, any free port for the others.

        What ``ponix dev`` wants: the usual URLs when nothing else runs, a working stack when a
        system ClickHouse already holds 9000.
        """
        return cls.standard().if_free()

    def if_free(self) -> StackPorts:
        """These ports, with each one that is taken right now replaced by ``None`` (any)."""
        return StackPorts(
            nats=_if_free(self.nats),
            nats_monitor=_if_free(self.nats_monitor),
            clickhouse_tcp=_if_free(self.clickhouse_tcp),
            clickhouse_http=_if_free(self.clickhouse_http),
        )


class LocalStack:
    """A :class:`NatsServer` in ``data_dir/nats`` and a :class:`ClickHouseServer` in
    ``data_dir/clickhouse``, started together and stopped together.

    Both keep their stores in ``data_dir``, so a stack stopped and started again (even by a
    new process) comes back with its streams and tables.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        ports: StackPorts | None = None,
        clickhouse_users: Sequence[ClickHouseUser] | None = None,
        clickhouse_binary: Path | None = None,
        nats_binary: Path | None = None,
    ) -> None:
        chosen = ports or StackPorts()
        self.data_dir = Path(data_dir).resolve()
        self.nats = NatsServer(
            self.data_dir / "nats",
            port=chosen.nats,
            monitor_port=chosen.nats_monitor,
            binary=nats_binary,
        )
        self.clickhouse = ClickHouseServer(
            self.data_dir / "clickhouse",
            tcp_port=chosen.clickhouse_tcp,
            http_port=chosen.clickhouse_http,
            users=clickhouse_users,
            binary=clickhouse_binary,
        )

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def clickhouse_url(self) -> str:
        return self.clickhouse.url

    def env(self) -> dict[str, str]:
        """``NATS_URL`` and ``CLICKHOUSE_URL`` for child processes (``ponix`` reads them)."""
        return {"NATS_URL": self.nats_url, "CLICKHOUSE_URL": self.clickhouse_url}

    def start(self) -> Self:
        """Start NATS, then ClickHouse; if ClickHouse fails, NATS is stopped again."""
        self.nats.start()
        try:
            self.clickhouse.start()
        except BaseException:
            self.nats.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both, ClickHouse first; NATS is stopped even if stopping ClickHouse raised."""
        try:
            self.clickhouse.stop()
        finally:
            self.nats.stop()

    def kill(self) -> None:
        """SIGKILL both (for crash tests)."""
        try:
            self.clickhouse.kill()
        finally:
            self.nats.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return (
            f"LocalStack({str(self.data_dir)!r}, nats={self.nats!r}, "
            f"clickhouse={self.clickhouse!r})"
        )


def _if_free(port: int | None) -> int | None:
    return port if port is not None and port_is_free(port) else None
