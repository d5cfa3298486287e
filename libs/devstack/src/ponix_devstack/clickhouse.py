"""A real ClickHouse server (Debian's 18.16 or a modern one) as a child process on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self
from urllib.parse import quote

from ponix_devstack.binaries import ClickHouseBinary, find_clickhouse
from ponix_devstack.clickhouse_config import (
    ClickHouseLayout,
    ClickHouseUser,
    render_server_config,
    render_users,
)
from ponix_devstack.errors import QueryFailedError, ServerNotStartedError, UsersNotReloadedError
from ponix_devstack.ports import LOOPBACK, PortSet
from ponix_devstack.process import ManagedServer, ServerProcess
from ponix_devstack.readiness import clickhouse_http_query, probe_clickhouse, wait_until_ready
from ponix_runner import Backoff, Deadline

# ClickHouse re-reads users.xml on its own schedule; polled, since there is no event.
_RELOAD_POLL = Backoff(initial=0.05, maximum=0.2)

_READONLY_QUERY = "SELECT value FROM system.settings WHERE name = 'readonly'"


class ClickHouseServer(ManagedServer):
    """ClickHouse under ``data_dir``: config.xml, users.xml, data, logs; restartable in place.

    The first of ``users`` (default: ``default`` with no password) is the *primary* user: it is
    the one in :attr:`url` and the one the devstack's own probes log in as.

    Users can be rewritten while the server runs (:meth:`set_users`, :meth:`set_readonly`):
    ClickHouse re-reads users.xml every couple of seconds. The new profile applies to *new*
    connections and HTTP requests only; a native connection opened before the change keeps the
    settings it logged in with (checked on 18.16).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        tcp_port: int | None = None,
        http_port: int | None = None,
        users: Sequence[ClickHouseUser] | None = None,
        binary: Path | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._layout = ClickHouseLayout(self.data_dir)
        self._users: tuple[ClickHouseUser, ...] = tuple(users or (ClickHouseUser("default"),))
        render_users(self._users)  # validates names before anything starts
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._binary_path = binary
        self._binary: ClickHouseBinary | None = None
        self._ports = PortSet("ClickHouseServer", {"tcp_port": tcp_port, "http_port": http_port})
        self._version: tuple[int, ...] | None = None
        self._process = ServerProcess("clickhouse-server", self._layout.stdout_file)

    # -- addresses -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def tcp_port(self) -> int:
        return self._ports["tcp_port"]

    @property
    def http_port(self) -> int:
        return self._ports["http_port"]

    @property
    def users(self) -> tuple[ClickHouseUser, ...]:
        return self._users

    @property
    def primary_user(self) -> ClickHouseUser:
        return self._users[0]

    @property
    def url(self) -> str:
        """``clickhouse://user[:password]@127.0.0.1:PORT/`` for the primary user, no database.

        clickhouse-driver's ``Client.from_url`` and ``ponix_config.ClickHouseSettings`` both
        read it.
        """
        return self.url_for()

    def url_for(self, user: str | None = None, database: str = "") -> str:
        """A native-protocol URL for ``user`` (default: primary), optionally with a database."""
        account = self._user(user)
        auth = quote(account.name, safe="")
        if account.password:
            auth += ":" + quote(account.password, safe="")
        return f"clickhouse://{auth}@{self.host}:{self.tcp_port}/{quote(database, safe='')}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def config_path(self) -> Path:
        return self._layout.config_file

    @property
    def users_path(self) -> Path:
        return self._layout.users_file

    @property
    def log_path(self) -> Path:
        return self._layout.log_file

    @property
    def error_log_path(self) -> Path:
        return self._layout.error_log_file

    @property
    def binary(self) -> ClickHouseBinary:
        """The binary in use; looked up (and cached) on first access or start."""
        if self._binary is None:
            self._binary = find_clickhouse(self._binary_path)
        return self._binary

    @property
    def version(self) -> tuple[int, ...]:
        """The running server's version, e.g. ``(18, 16, 1)``."""
        if self._version is None:
            raise ServerNotStartedError("ClickHouseServer", "version")
        return self._version

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start (or restart on the same data dir and ports) and wait until queries work.

        A no-op when already running. Raises :class:`ClickHouseNotFoundError` when no binary
        is installed, :class:`ServerStartFailedError` with the log tail if the process exits,
        :class:`ServerNotReadyError` if it does not answer in time.
        """
        if self._process.running:
            return self
        binary = self.binary
        self._ports.start(lambda: self._spawn_and_wait(binary))
        return self

    def __repr__(self) -> str:
        where = f"tcp_port={self.tcp_port}" if self._ports.chosen else "not started"
        return f"ClickHouseServer({str(self.data_dir)!r}, {where}, running={self.is_running})"

    # -- queries and users -----------------------------------------------------------------

    def query(self, sql: str, *, user: str | None = None, timeout: float = 10.0) -> str:
        """Run ``sql`` over the HTTP interface and return the raw (TSV) answer.

        A convenience for setup and fault tests; the pipeline itself speaks the native protocol.
        """
        account = self._user(user)
        return clickhouse_http_query(
            self.host,
            self.http_port,
            sql,
            user=account.name,
            password=account.password,
            timeout=timeout,
        )

    def set_users(
        self, users: Sequence[ClickHouseUser], *, wait: bool = True, timeout: float = 15.0
    ) -> None:
        """Rewrite users.xml; with ``wait``, return once new logins see the new users.

        Works on a stopped server too (the next start reads the file). The wait logs in as
        every user and checks its ``readonly`` setting; ClickHouse polls the file about every
        2 s, so expect up to that long.
        """
        new_users = tuple(users)
        self._write_users(new_users)
        self._users = new_users
        if wait and self.is_running:
            self._wait_users_applied(timeout)

    def set_readonly(
        self,
        user: str | None = None,
        *,
        readonly: bool = True,
        wait: bool = True,
        timeout: float = 15.0,
    ) -> None:
        """Move ``user`` (default: primary) to the readonly profile, or back with ``False``.

        Inserts from new connections then fail with code 164 (READONLY): the fault tests' way
        to make ClickHouse refuse writes while it still answers reads.
        """
        name = self._user(user).name
        self.set_users(
            [
                ClickHouseUser(u.name, u.password, readonly) if u.name == name else u
                for u in self._users
            ],
            wait=wait,
            timeout=timeout,
        )

    # -- internals -------------------------------------------------------------------------

    def _user(self, name: str | None) -> ClickHouseUser:
        if name is None:
            return self.primary_user
        for user in self._users:
            if user.name == name:
                return user
        msg = f"no ClickHouse user {name!r} (have {[u.name for u in self._users]})"
        raise KeyError(msg)

    def _spawn_and_wait(self, binary: ClickHouseBinary) -> None:
        layout = self._layout
        for directory in layout.directories():
            directory.mkdir(parents=True, exist_ok=True)
        layout.config_file.write_text(
            render_server_config(
                layout, tcp_port=self.tcp_port, http_port=self.http_port, listen_host=self.host
            ),
            encoding="utf-8",
        )
        self._write_users(self._users)
        self._version = None
        self._process.spawn(
            binary.server_argv(layout.config_file),
            cwd=self.data_dir,
            extra_logs=[layout.error_log_file],
        )
        ready = wait_until_ready(
            lambda budget: probe_clickhouse(
                self.host,
                self.http_port,
                self.tcp_port,
                user=self.primary_user.name,
                password=self.primary_user.password,
                timeout=budget,
            ),
            server="clickhouse-server",
            timeout=self.ready_timeout,
            check_alive=self._process.check_alive,
            log_tail=self._process.log_tail,
            on_timeout=self._process.kill,
        )
        self._version = ready.version

    def _write_users(self, users: tuple[ClickHouseUser, ...]) -> None:
        path = self._layout.users_file
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            previous_mtime_ns: int | None = path.stat().st_mtime_ns
        except FileNotFoundError:
            previous_mtime_ns = None
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text(render_users(users), encoding="utf-8")
        # Atomic: the reloader must never parse a half-written file.
        scratch.replace(path)
        if previous_mtime_ns is not None:
            # ClickHouse's config reloader compares mtimes in whole seconds, so a rewrite in the
            # same second as the previous one would go unnoticed; push the mtime 1 s past it.
            stat = path.stat()
            bumped = max(stat.st_mtime_ns, previous_mtime_ns + 1_000_000_000)
            os.utime(path, ns=(stat.st_atime_ns, bumped))

    def _wait_users_applied(self, timeout: float) -> None:
        deadline = Deadline.after(timeout)
        attempt = 0
        while True:
            attempt += 1
            reason = self._users_mismatch(deadline)
            if reason is None:
                return
            if deadline.expired():
                raise UsersNotReloadedError(timeout, reason)
            # Another process's file poll: there is no event to wait on.
            time.sleep(min(_RELOAD_POLL.delay(attempt), deadline.remaining()))

    def _users_mismatch(self, deadline: Deadline) -> str | None:
        budget = max(0.05, min(2.0, deadline.remaining()))
        for user in self._users:
            try:
                got = self.query(_READONLY_QUERY, user=user.name, timeout=budget).strip()
            except (OSError, QueryFailedError) as err:
                return f"user {user.name!r}: {err}"
            want = "1" if user.readonly else "0"
            if got != want:
                return f"user {user.name!r} has readonly={got}, want {want}"
        return None
