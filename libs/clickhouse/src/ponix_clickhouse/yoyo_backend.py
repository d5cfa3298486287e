"""yoyo's ``clickhouse`` backend: migrations over the native protocol, without transactions.

URL: ``clickhouse://user:password@host:9000/database?table=processed_envelopes&secure=0``
(optional ``connect_timeout``, ``send_receive_timeout``, ``lock_lease`` seconds). The database
is created when missing; yoyo's bookkeeping tables live in it.

How yoyo's model maps onto ClickHouse (checked on 18.16 and a modern engine):

* **Transactions** do not exist: begin/commit/rollback/savepoints are no-ops and
  ``has_transactional_ddl`` is False, so yoyo undoes the completed steps of a failing migration
  by running their rollbacks. Migrations must therefore be idempotent (``IF NOT EXISTS``).
* **Bookkeeping is append-only.** ``DELETE`` is an asynchronous mutation (``ALTER ... DELETE``,
  only for MergeTree, finished "some time later"), so nothing here deletes. Marking a migration
  appends ``applied=1``, unmarking appends ``applied=0``; a migration is applied when its newest
  row (highest ``seq``) says so.
* **The lock** (``yoyo_lock``) is a claim/release log. To take it: when nobody holds it, append a
  claim with a random token, read all live claims back, and hold the lock only if ours is the
  only one; otherwise append a release for our token and retry after a random pause. Release
  appends a release row. A claim is live while it has no release row and its lease (server
  clock) has not run out. See :meth:`ClickHouseBackend.lock` for the guarantee and its limits.

Python migration steps receive :class:`ClickHouseConnection` (``.execute(sql)``,
``.server_version``, ``.database``, ``.table``) so they can choose DDL by server version.
"""

from __future__ import annotations

import getpass
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.dbapi import errors as dbapi_errors
from yoyo import exceptions as yoyo_exceptions
from yoyo.backends.base import DatabaseBackend

from ponix_clickhouse.client import server_version, translate_error
from ponix_clickhouse.errors import ClickHouseError, QueryError
from ponix_clickhouse.sql import check_identifier, qualified_name, quote_identifier

DEFAULT_TABLE = "processed_envelopes"
DEFAULT_LOCK_LEASE = 120
_UNKNOWN_DATABASE = 81
_ALREADY_EXISTS = frozenset({57, 82})  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS

# Data after VALUES must travel as native blocks; inline values make the server wait for
# blocks that never come (the query hangs until send_receive_timeout).
_INLINE_VALUES = re.compile(
    r"^\s*INSERT\s+INTO\s+[\w.`\"]+\s*(\([^)]*\))?\s*VALUES\s*\(", re.IGNORECASE | re.DOTALL
)


class ClickHouseDatabaseError(dbapi_errors.OperationalError):  # type: ignore[misc]
    """What yoyo sees when a statement fails; the translated lib error is ``.error``."""

    def __init__(self, error: ClickHouseError) -> None:
        super().__init__(str(error))
        self.error = error
        self.server_code = error.server_code if isinstance(error, QueryError) else None


class ClickHouseCursor:
    """A DB-API-shaped cursor over the connection's single client."""

    arraysize = 1

    def __init__(self, connection: ClickHouseConnection) -> None:
        self._connection = connection
        self._rows: list[tuple[Any, ...]] = []
        self.description: list[tuple[Any, ...]] | None = None
        self.rowcount = -1

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> None:
        rows, columns = self._connection.run(sql, params)
        self._rows = list(rows)
        self.rowcount = len(self._rows)
        self.description = (
            [(name, kind, None, None, None, None, True) for name, kind in columns]
            if columns
            else None
        )

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []


class ClickHouseConnection:
    """One native client, as yoyo's ``connection`` and as the argument of Python steps."""

    def __init__(
        self, client: Client, *, database: str, table: str, server_version: tuple[int, ...]
    ) -> None:
        self.client = client
        self.database = database
        self.table = table
        self.server_version = server_version

    def run(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
        """Execute one statement; ``params`` is a mapping for ``%(name)s`` or INSERT rows."""
        if not isinstance(params, list | tuple) and _INLINE_VALUES.match(sql):
            msg = "inline INSERT ... VALUES (...) is not supported; pass the rows as parameters"
            raise ClickHouseDatabaseError(QueryError(None, msg))
        try:
            if isinstance(params, list | tuple):
                self.client.execute(sql, list(params), types_check=True)
                return [], []
            rows, columns = self.client.execute(sql, params, with_column_types=True)
        except Exception as exc:
            raise ClickHouseDatabaseError(translate_error(exc, self.client)) from exc
        return [tuple(row) for row in rows], [(str(n), str(t)) for n, t in columns]

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Execute one statement and return its rows (none for DDL and inserts)."""
        return self.run(sql, params)[0]

    def cursor(self) -> ClickHouseCursor:
        return ClickHouseCursor(self)

    def commit(self) -> None:
        """ClickHouse has no transactions: every statement is already final."""

    def rollback(self) -> None:
        """ClickHouse has no transactions: nothing can be undone here."""

    def close(self) -> None:
        self.client.disconnect()


@dataclass(frozen=True, slots=True)
class LockHolder:
    """A live claim on the migration lock."""

    token: str
    pid: int
    host: str


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


class ClickHouseBackend(DatabaseBackend):  # type: ignore[misc]
    """yoyo ``DatabaseBackend`` for ClickHouse (18.16 and modern); see the module docstring."""

    driver_module = "clickhouse_driver.dbapi"
    lock_poll_interval = 0.2
    lock_lease: int = DEFAULT_LOCK_LEASE
    _is_locked: bool = False
    _in_transaction: bool = False
    _internal_schema_updated: bool = False

    def __init__(self, dburi: Any, migration_table: str) -> None:
        super().__init__(dburi, migration_table)
        # yoyo runs steps on copy()s, which read this from a cache that init_database fills;
        # it must be False on every copy so failed steps roll back the ones already done.
        self.has_transactional_ddl = False

    # -- connection -----------------------------------------------------------------------

    def connect(self, dburi: Any) -> ClickHouseConnection:
        args: dict[str, str] = dict(dburi.args or {})
        database = check_identifier(dburi.database or "default")
        table = check_identifier(args.get("table") or DEFAULT_TABLE)
        self.lock_lease = int(float(args.get("lock_lease", DEFAULT_LOCK_LEASE)))
        secure = _flag(args.get("secure"))

        def make(db: str) -> Client:
            return Client(
                host=dburi.hostname or "127.0.0.1",
                port=dburi.port or (9440 if secure else 9000),
                user=dburi.username or "default",
                password=dburi.password or "",
                database=db,
                secure=secure,
                connect_timeout=float(args.get("connect_timeout", 5)),
                send_receive_timeout=float(args.get("send_receive_timeout", 60)),
                client_name="ponix-migrate",
            )

        client = make(database)
        try:
            version = server_version(client)
        except QueryError as exc:
            client.disconnect()
            if exc.server_code != _UNKNOWN_DATABASE:
                raise
            _create_database(make(""), database)
            client = make(database)
            version = server_version(client)
        return ClickHouseConnection(client, database=database, table=table, server_version=version)

    def quote_identifier(self, s: str) -> str:
        return quote_identifier(s)

    def _name(self, table: str) -> str:
        return qualified_name(self.connection.database, table)

    def _run(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        return self.connection.execute(sql, params)

    def _create(self, ddl: str) -> None:
        try:
            self._run(ddl)
        except ClickHouseDatabaseError as exc:
            # Two migrators creating the same table at once: the loser may see "exists".
            if exc.server_code not in _ALREADY_EXISTS:
                raise

    def init_database(self) -> None:
        self.create_lock_table()
        self.has_transactional_ddl = False

    def list_tables(self, **kwargs: Any) -> list[str]:
        rows = self._run(
            "SELECT name FROM system.tables WHERE database = %(db)s ORDER BY name",
            {"db": self.connection.database},
        )
        return [str(row[0]) for row in rows]

    # -- transactions: none ---------------------------------------------------------------

    def begin(self) -> None:
        self._in_transaction = True

    def commit(self) -> None:
        self._in_transaction = False

    def rollback(self) -> None:
        self._in_transaction = False

    def savepoint(self, id: str) -> None:
        """No savepoints in ClickHouse."""

    def savepoint_release(self, id: str) -> None:
        """No savepoints in ClickHouse."""

    def savepoint_rollback(self, id: str) -> None:
        """No savepoints in ClickHouse."""

    @contextmanager
    def disable_transactions(self) -> Iterator[None]:
        yield

    def _check_transactional_ddl(self) -> bool:
        return False

    # -- bookkeeping tables (append-only) --------------------------------------------------

    def create_lock_table(self) -> None:
        self._create(
            f"CREATE TABLE IF NOT EXISTS {self._name(self.lock_table)} ("
            "token String, state UInt8, pid UInt32, host String, "
            "created_at DateTime DEFAULT now(), lease_seconds UInt32"
            ") ENGINE = MergeTree() ORDER BY (token, state)"
        )

    def ensure_internal_schema_updated(self) -> None:
        if self._internal_schema_updated:
            return
        self._create(
            f"CREATE TABLE IF NOT EXISTS {self._name(self.migration_table)} ("
            "migration_hash String, migration_id String, applied_at_utc DateTime('UTC'), "
            "applied UInt8, seq UInt64"
            ") ENGINE = MergeTree() ORDER BY (migration_hash, seq)"
        )
        self._create(
            f"CREATE TABLE IF NOT EXISTS {self._name(self.log_table)} ("
            "id String, migration_hash String, migration_id String, operation String, "
            "username String, hostname String, comment String, created_at_utc DateTime('UTC')"
            ") ENGINE = MergeTree() ORDER BY (created_at_utc, id)"
        )
        self._create(
            f"CREATE TABLE IF NOT EXISTS {self._name(self.version_table)} ("
            "version UInt32, installed_at_utc DateTime('UTC')"
            ") ENGINE = MergeTree() ORDER BY version"
        )
        # yoyo's internal schema version 2 (the layout above); duplicates would be harmless.
        with self.lock():
            ((count,),) = self._run(
                f"SELECT count() FROM {self._name(self.version_table)} WHERE version = 2"
            )
            if not count:
                self._run(
                    f"INSERT INTO {self._name(self.version_table)} "
                    "(version, installed_at_utc) VALUES",
                    [(2, datetime.now(UTC))],
                )
        self._internal_schema_updated = True

    def get_applied_migration_hashes(self) -> list[str]:
        self.ensure_internal_schema_updated()
        rows = self._run(
            f"SELECT migration_hash FROM {self._name(self.migration_table)} "
            "GROUP BY migration_hash HAVING argMax(applied, seq) = 1 ORDER BY max(seq)"
        )
        return [str(row[0]) for row in rows]

    def _append_mark(self, migration: Any, applied: int) -> None:
        table = self._name(self.migration_table)
        self._run(
            f"INSERT INTO {table} (migration_hash, migration_id, applied_at_utc, applied, seq) "
            f"SELECT %(hash)s, %(id)s, now(), %(applied)s, (SELECT max(seq) + 1 FROM {table})",
            {"hash": migration.hash, "id": migration.id, "applied": applied},
        )

    def mark_one(self, migration: Any, log: bool = True) -> None:
        self.ensure_internal_schema_updated()
        self._append_mark(migration, 1)
        if log:
            self.log_migration(migration, "mark")

    def unmark_one(self, migration: Any, log: bool = True) -> None:
        self.ensure_internal_schema_updated()
        self._append_mark(migration, 0)
        if log:
            self.log_migration(migration, "unmark")

    def log_migration(self, migration: Any, operation: str) -> None:
        data = self.get_log_data(migration, operation)
        self._run(
            f"INSERT INTO {self._name(self.log_table)} (id, migration_hash, migration_id, "
            "operation, username, hostname, comment, created_at_utc) VALUES",
            [
                (
                    str(data["id"]),
                    str(data["migration_hash"] or ""),
                    str(data["migration_id"] or ""),
                    str(data["operation"]),
                    str(data["username"]),
                    str(data["hostname"]),
                    "",
                    datetime.now(UTC),
                )
            ],
        )

    # -- the lock --------------------------------------------------------------------------

    @contextmanager
    def lock(self, timeout: float = 10) -> Iterator[None]:
        """Hold the migration lock (re-entrant within this backend) for the ``with`` body.

        Guarantee: on one server (or one replica that every migrator talks to), at most one
        token holds the lock at a time while leases last. A holder's claim was visible before
        its read-back; anyone whose claim lands later reads that claim back and withdraws, and
        anyone whose claim landed earlier was seen by the holder, who would have withdrawn.
        Limits: the lease (``lock_lease``, default 120 s, server clock) is not renewed, so a
        holder that runs longer, or is paused longer, loses the lock silently; a crashed
        holder blocks others until its lease ends (or ``yoyo break-lock``); two contenders that
        see each other both withdraw and retry after a random pause, so under heavy contention
        progress is probabilistic; on replicated tables, replication lag breaks the
        read-your-write assumption (run migrations against one replica).
        """
        if self._is_locked:
            yield
            return
        token = self._acquire(timeout)
        self._is_locked = True
        try:
            yield
        finally:
            self._is_locked = False
            self._append_lock_row(token, 0)

    def lock_holders(self) -> list[LockHolder]:
        """Live claims, oldest token first; empty when nobody holds the lock."""
        rows = self._run(
            f"SELECT token, any(pid), any(host) FROM {self._name(self.lock_table)} "
            "GROUP BY token HAVING min(state) = 1 "
            "AND max(toUInt32(created_at) + lease_seconds) > toUInt32(now()) ORDER BY token"
        )
        return [LockHolder(str(t), int(p), str(h)) for t, p, h in rows]

    def _append_lock_row(self, token: str, state: int) -> None:
        self._run(
            f"INSERT INTO {self._name(self.lock_table)} "
            "(token, state, pid, host, lease_seconds) VALUES",
            [(token, state, os.getpid(), socket.gethostname(), self.lock_lease if state else 0)],
        )

    def _acquire(self, timeout: float) -> str:
        """Take the lock; return the token that holds it."""
        deadline = time.monotonic() + max(0.0, float(timeout or 0))
        while True:
            holders = self.lock_holders()
            if not holders:
                # A fresh token per attempt: a withdrawn token has a release row forever.
                token = uuid.uuid4().hex
                try:
                    self._append_lock_row(token, 1)
                    holders = self.lock_holders()
                except BaseException:
                    with suppress(Exception):
                        self._append_lock_row(token, 0)
                    raise
                if [h.token for h in holders] == [token]:
                    return token
                self._append_lock_row(token, 0)
                holders = [h for h in holders if h.token != token]
            if time.monotonic() >= deadline:
                who = ", ".join(f"pid {h.pid} on {h.host}" for h in holders) or "a contender"
                msg = f"{who} holds the migration lock (yoyo break-lock removes it)"
                raise yoyo_exceptions.LockTimeout(msg)
            # Random pauses break the symmetry of two contenders that withdrew together.
            time.sleep(self.lock_poll_interval * random.uniform(0.5, 1.5))  # noqa: S311

    def _insert_lock_row(self, pid: int, timeout: float, poll_interval: float = 0.5) -> None:
        raise NotImplementedError("ClickHouseBackend.lock() replaces yoyo's lock rows")

    def _delete_lock_row(self, pid: int) -> None:
        raise NotImplementedError("ClickHouseBackend.lock() replaces yoyo's lock rows")

    def break_lock(self) -> None:
        for holder in self.lock_holders():
            self._append_lock_row(holder.token, 0)

    def get_log_data(self, migration: Any = None, operation: str = "apply") -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "migration_id": migration.id if migration else None,
            "migration_hash": migration.hash if migration else None,
            "username": _user(),
            "hostname": socket.getfqdn(),
            "created_at_utc": datetime.now(UTC),
            "operation": operation,
        }
        return data


def _create_database(client: Client, database: str) -> None:
    try:
        client.execute(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    except Exception as exc:
        error = translate_error(exc, client)
        if not (isinstance(error, QueryError) and error.server_code in _ALREADY_EXISTS):
            raise error from exc
    finally:
        client.disconnect()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return str(os.getuid())
