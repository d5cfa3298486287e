"""Apply, list or roll back the ClickHouse migrations, in process, through the yoyo backend.

Where the migrations come from, first match wins:

1. the ``source`` argument;
2. ``settings.migrations_dir`` (``CLICKHOUSE_MIGRATIONS_DIR``, checked to be a directory when
   the settings are loaded);
3. the copy shipped inside this package (``ponix_clickhouse/migrations``).

The canonical files are the repo's ``migrations/``; the package holds a byte-identical copy (a
test fails when they drift) because a service image built with ``uv sync --package`` (editable
or not) has this package but not necessarily the repo root.

Blocking; call it with ``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from clickhouse_driver.dbapi import errors as dbapi_errors
from yoyo import exceptions as yoyo_exceptions
from yoyo import read_migrations
from yoyo.connections import DatabaseURI
from yoyo.migrations import default_migration_table

from ponix_clickhouse.errors import ClickHouseError, MigrationError, MigrationLockedError
from ponix_clickhouse.layout import is_rs_table
from ponix_clickhouse.yoyo_backend import (
    DEFAULT_LOCK_LEASE,
    ClickHouseBackend,
    ClickHouseConnection,
)
from ponix_config import ClickHouseSettings


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """What one :func:`migrate` call found and did; ids are migration file stems."""

    database: str
    server_version: tuple[int, ...]
    source: Path
    applied: tuple[str, ...]
    """Applied by this call, in order."""
    rolled_back: tuple[str, ...]
    """Rolled back by this call."""
    already_applied: tuple[str, ...]
    """Applied before this call and still applied."""
    pending: tuple[str, ...]
    """Known but not applied after this call."""


def migrations_dir(
    source: str | Path | None = None, *, settings: ClickHouseSettings | None = None
) -> Path:
    """The directory :func:`migrate` reads (see the module docstring for the order)."""
    if source is not None:
        return Path(source)
    if settings is not None and settings.migrations_dir is not None:
        return settings.migrations_dir
    return Path(str(resources.files("ponix_clickhouse").joinpath("migrations")))


def database_uri(settings: ClickHouseSettings, *, lock_lease: int = DEFAULT_LOCK_LEASE) -> Any:
    """yoyo's parsed URI for ``settings``, built field by field (no password in a string)."""
    return DatabaseURI(
        scheme="clickhouse",
        username=settings.user,
        password=settings.password.get_secret_value(),
        hostname=settings.host,
        port=settings.port,
        database=settings.database,
        args={
            "table": settings.table,
            "secure": "1" if settings.secure else "0",
            "connect_timeout": str(settings.connect_timeout),
            "send_receive_timeout": str(settings.send_receive_timeout),
            "lock_lease": str(lock_lease),
        },
    )


def migrate(
    settings: ClickHouseSettings,
    *,
    rollback: bool = False,
    list_only: bool = False,
    source: str | Path | None = None,
    lock_timeout: float = 60.0,
    lock_lease: int = DEFAULT_LOCK_LEASE,
) -> MigrationReport:
    """Apply every pending migration (default), roll back the newest applied one
    (``rollback=True``), or only report (``list_only=True``), under the migration lock.

    Raises :class:`ClickHouseUnavailableError`/:class:`ClickHouseAuthError` when the server
    cannot be used, :class:`MigrationLockedError` when another migrator holds the lock past
    ``lock_timeout`` seconds, :class:`MigrationError` when a migration fails or the table is
    a Ponix RS table (no ``id``: :func:`~ponix_clickhouse.upgrade_rs_table` upgrades it).
    """
    path = migrations_dir(source, settings=settings)
    if not path.is_dir():
        raise MigrationError(f"no migrations directory at {path}")
    migrations = read_migrations(str(path))
    backend = ClickHouseBackend(
        database_uri(settings, lock_lease=lock_lease), default_migration_table
    )
    try:
        backend.init_database()
        with backend.lock(timeout=lock_timeout):
            before = set(backend.get_applied_migration_hashes())
            applied: list[str] = []
            rolled_back: list[str] = []
            if rollback and not list_only:
                for migration in list(backend.to_rollback(migrations))[:1]:
                    _run(backend.rollback_one, migration, "roll back")
                    rolled_back.append(migration.id)
            elif not list_only:
                _refuse_rs_table(backend.connection, settings)
                for migration in backend.to_apply(migrations):
                    _run(backend.apply_one, migration, "apply")
                    applied.append(migration.id)
                if applied:
                    for hook in migrations.post_apply:
                        _run(lambda m: backend.apply_one(m, mark=False), hook, "run")
            after = set(backend.get_applied_migration_hashes())
    except yoyo_exceptions.LockTimeout as exc:
        raise MigrationLockedError(str(exc)) from None
    except yoyo_exceptions.BadMigration as exc:
        raise MigrationError(
            f"cannot load a migration: {exc.args[0] if exc.args else exc}"
        ) from exc
    finally:
        backend.connection.close()
    return MigrationReport(
        database=settings.database,
        server_version=backend.connection.server_version,
        source=path,
        applied=tuple(applied),
        rolled_back=tuple(rolled_back),
        already_applied=tuple(m.id for m in migrations if m.hash in before and m.hash in after),
        pending=tuple(m.id for m in migrations if m.hash not in after),
    )


def _refuse_rs_table(connection: ClickHouseConnection, settings: ClickHouseSettings) -> None:
    """Migration 0001 creates the table only if it is missing: an RS table would stay, and the
    ingester would then stop at its schema check with no way forward named."""
    rows = connection.execute(
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s",
        {"db": settings.database, "t": settings.table},
    )
    if is_rs_table({str(name): str(kind) for name, kind in rows}):
        raise MigrationError(
            f"{settings.database}.{settings.table} is a Ponix RS table (no id column): "
            "upgrade it in place with `ponix migrate --from-rs`"
        )


def _run(action: Any, migration: Any, verb: str) -> None:
    try:
        action(migration)
    except ClickHouseError as exc:
        raise MigrationError(f"cannot {verb} {migration.id}: {exc}") from exc
    except dbapi_errors.DatabaseError as exc:
        error = getattr(exc, "error", exc)
        raise MigrationError(f"cannot {verb} {migration.id}: {error}") from exc
