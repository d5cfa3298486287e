"""Upgrade a Ponix RS table (goose schema, no ``id`` column) to ours without losing a row.

Ponix RS created ``processed_envelopes (organization_id String, end_device_id String,
occurred_at DateTime, processed_at DateTime, data JSON)``, a plain ``MergeTree`` ordered by
``(organization_id, occurred_at, end_device_id)``; its first release had no ``organization_id``
(read as ``''``, as RS's own migration did). Ours adds ``id`` and collapses redeliveries with a
``ReplacingMergeTree`` whose sorting key ends with it, so the table cannot be altered in place.

:func:`upgrade_rs_table`, under the migration lock:

1. reads the RS table one month (its partition) at a time, grouping identical rows;
2. names each row with a deterministic UUIDv7 (:func:`rs_envelope_id`): the same RS row gets the
   same id on every run, and its timestamp is the row's ``occurred_at``, so ids sort by time.
   RS stored a redelivered envelope twice (it had no dedup); identical rows are all kept, each
   with its own id (the copy's ordinal among them is part of its key), so ``count() FINAL``
   after the upgrade equals the RS table's ``count()``;
3. inserts into a staging table created with migration 0001's own DDL for this server version
   (``DateTime64(3)`` on 20.1+, the JSON ``data`` as text);
4. checks that the staging table holds exactly as many rows as the RS table, and that the RS
   table did not grow meanwhile (Ponix RS still running);
5. swaps: the RS table becomes ``<table>_rs`` (kept: drop it once satisfied), the staging table
   becomes ``<table>``; then the usual migrations run (the exact-read view, yoyo's bookkeeping).

A failure before the swap leaves the RS table untouched (the staging table is rebuilt from
scratch on the next run). Blocking; call it with ``asyncio.to_thread`` from async code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from clickhouse_driver import Client
from yoyo import read_migrations
from yoyo.migrations import default_migration_table

from ponix_clickhouse.client import make_client, server_version, translate_error
from ponix_clickhouse.errors import ClickHouseError, MigrationError, QueryError
from ponix_clickhouse.layout import ENVELOPE_COLUMNS, RS_COLUMNS, is_rs_table, read_table_layout
from ponix_clickhouse.sql import check_identifier, column_list, qualified_name
from ponix_config import ClickHouseSettings
from ponix_proto import deterministic_envelope_id

RS_BACKUP_SUFFIX: Final = "_rs"
STAGING_SUFFIX: Final = "_from_rs"
RS_KEY_PREFIX: Final = "ponix-rs:"
"""Keys of :func:`rs_envelope_id` start with this; never change it (ids would change)."""
BATCH_ROWS: Final = 50_000
# The lock lease is not renewed while held: give the copy of a large table room.
LOCK_LEASE: Final = 6 * 3600
_JSON_TYPES: Final = ("JSON", "Object(")

Progress = Callable[[int, int], None]
"""``progress(rows_copied, rows_total)``, called after each inserted batch."""


@dataclass(frozen=True, slots=True)
class RsUpgradeReport:
    """What one :func:`upgrade_rs_table` found and did."""

    database: str
    table: str
    server_version: tuple[int, ...]
    upgraded: bool
    """False when the table already had an ``id`` column: nothing was copied."""
    rows: int = 0
    """Rows in the upgraded table, equal to the RS table's row count."""
    identical: int = 0
    """Rows identical to another one (RS stored redeliveries twice); kept, each with its id."""
    backup: str | None = None
    """``database.table`` the RS table was renamed to."""
    seconds: float = 0.0
    applied: tuple[str, ...] = ()
    """Migrations the follow-up :func:`~ponix_clickhouse.migrate` applied."""


def rs_envelope_id(
    organization_id: str,
    end_device_id: str,
    occurred_at: int,
    processed_at: int,
    data: str,
    ordinal: int = 0,
) -> str:
    """The id an RS row gets: a UUIDv7 at ``occurred_at`` (epoch seconds) whose random bits
    are a hash of every column and of ``ordinal``, the row's index among identical rows."""
    key = json.dumps(
        [organization_id, end_device_id, occurred_at, processed_at, data, ordinal],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return deterministic_envelope_id(RS_KEY_PREFIX + key, datetime.fromtimestamp(occurred_at, UTC))


def partitions_query(database: str, table: str) -> str:
    """The RS table's months (``toYYYYMM(occurred_at)``), oldest first."""
    return (
        f"SELECT DISTINCT toYYYYMM(`occurred_at`) AS month FROM {qualified_name(database, table)} "
        "ORDER BY month"
    )


def partition_query(database: str, table: str, columns: Mapping[str, str], month: int) -> str:
    """One month of the RS table, identical rows grouped: ``(organization_id, end_device_id,
    occurred_at, processed_at, data, copies)``, timestamps as epoch seconds, data as JSON text."""
    _check_rs_types(database, table, columns)
    organization = "`organization_id`" if "organization_id" in columns else "''"
    data, settings = "`data`", ""
    if columns["data"].startswith(_JSON_TYPES):
        # Numbers stay numbers in the text (a server may be set to quote 64-bit integers).
        data = "toJSONString(`data`)"
        settings = " SETTINGS output_format_json_quote_64bit_integers = 0"
    elif columns["data"] != "String":
        data = "toString(`data`)"
    return (
        f"SELECT {organization} AS org, `end_device_id` AS device, "
        "toUInt32(`occurred_at`) AS occurred, toUInt32(`processed_at`) AS processed, "
        f"{data} AS data_text, count() AS copies "
        f"FROM {qualified_name(database, table)} WHERE toYYYYMM(`occurred_at`) = {int(month)} "
        f"GROUP BY org, device, occurred, processed, data_text{settings}"
    )


def envelope_rows(grouped: Iterable[Sequence[Any]], time_scale: int) -> Iterator[tuple[Any, ...]]:
    """Rows of our table (:data:`ENVELOPE_COLUMNS` order) from :func:`partition_query`'s rows;
    ``time_scale`` is the target's units per second (1 for DateTime, 1000 for DateTime64(3))."""
    for org, device, occurred, processed, data, copies in grouped:
        occurred_s, processed_s = int(occurred), int(processed)
        for ordinal in range(int(copies)):
            yield (
                rs_envelope_id(org, device, occurred_s, processed_s, data, ordinal),
                org,
                device,
                occurred_s * time_scale,
                processed_s * time_scale,
                data,
            )


def staging_table_statement(database: str, staging: str, version: tuple[int, ...]) -> str:
    """Migration 0001's ``CREATE TABLE`` for ``staging`` on a server of ``version``."""
    from ponix_clickhouse.migrate import migrations_dir

    return _create_table(str(migrations_dir()), database, staging, version)


def swap_statement(database: str, table: str, staging: str, backup: str) -> str:
    """The RS ``table`` becomes ``backup``, ``staging`` becomes ``table``; one statement."""
    return (
        f"RENAME TABLE {qualified_name(database, table)} TO {qualified_name(database, backup)}, "
        f"{qualified_name(database, staging)} TO {qualified_name(database, table)}"
    )


def upgrade_rs_table(
    settings: ClickHouseSettings,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Progress | None = None,
    lock_timeout: float = 60.0,
) -> RsUpgradeReport:
    """Upgrade ``settings.database.settings.table`` from Ponix RS's schema to ours (see the
    module docstring); a table that already has ``id`` is left as it is.

    Raises :class:`MigrationError` when the table is missing or is neither ours nor RS's, when
    ``<table>_rs`` already exists, or when the copy does not match; the connection errors of
    :func:`~ponix_clickhouse.migrate` otherwise.
    """
    from ponix_clickhouse.migrate import database_uri, migrate, migrations_dir
    from ponix_clickhouse.yoyo_backend import ClickHouseBackend

    database, table = check_identifier(settings.database), check_identifier(settings.table)
    reader = make_client(settings, database="")
    try:
        version = server_version(reader)
        if not is_rs_table(_columns(reader, database, table)):
            _columns_or_refuse(reader, database, table)
            return RsUpgradeReport(database, table, version, upgraded=False)
        backend = ClickHouseBackend(
            database_uri(settings, lock_lease=LOCK_LEASE), default_migration_table
        )
        try:
            backend.init_database()
            with backend.lock(timeout=lock_timeout):
                report = _upgrade(
                    settings,
                    reader,
                    version,
                    str(migrations_dir(settings=settings)),
                    batch_rows=batch_rows,
                    progress=progress,
                )
        finally:
            backend.connection.close()
    finally:
        reader.disconnect()
    applied = migrate(settings, lock_timeout=lock_timeout).applied
    return RsUpgradeReport(
        database,
        table,
        version,
        upgraded=report.upgraded,
        rows=report.rows,
        identical=report.identical,
        backup=report.backup,
        seconds=report.seconds,
        applied=applied,
    )


def _upgrade(
    settings: ClickHouseSettings,
    reader: Client,
    version: tuple[int, ...],
    source: str,
    *,
    batch_rows: int,
    progress: Progress | None,
) -> RsUpgradeReport:
    started = time.monotonic()
    database, table = settings.database, settings.table
    columns = _columns(reader, database, table)
    if not is_rs_table(columns):  # upgraded by someone else while we waited for the lock
        return RsUpgradeReport(database, table, version, upgraded=False)
    backup = check_identifier(table + RS_BACKUP_SUFFIX)
    staging = check_identifier(table + STAGING_SUFFIX)
    if _columns(reader, database, backup):
        raise MigrationError(
            f"{database}.{backup} already exists (a kept Ponix RS table?): drop or rename it, "
            "then run again"
        )
    total = _count(reader, database, table)
    _run(reader, f"DROP TABLE IF EXISTS {qualified_name(database, staging)}")
    _run(reader, _create_table(source, database, staging, version))
    writer = make_client(settings, database="")
    try:
        scale = read_table_layout(writer, database, staging, server_version=version).time_scale(
            "occurred_at"
        )
        copied, identical = _copy(
            reader, writer, settings, columns, staging, scale, batch_rows, total, progress
        )
    finally:
        writer.disconnect()
    stored = _count(reader, database, staging)
    now = _count(reader, database, table)
    if now != total:
        _run(reader, f"DROP TABLE IF EXISTS {qualified_name(database, staging)}")
        raise MigrationError(
            f"{database}.{table} went from {total} to {now} rows during the copy (is Ponix RS "
            "still writing?): nothing was swapped; stop it and run again"
        )
    if stored != total or copied != total:
        raise MigrationError(
            f"the copy of {database}.{table} holds {stored} rows, not {total}: nothing was "
            f"swapped; {database}.{staging} is kept for a look"
        )
    _run(reader, swap_statement(database, table, staging, backup))
    return RsUpgradeReport(
        database,
        table,
        version,
        upgraded=True,
        rows=stored,
        identical=identical,
        backup=f"{database}.{backup}",
        seconds=time.monotonic() - started,
    )


def _copy(
    reader: Client,
    writer: Client,
    settings: ClickHouseSettings,
    columns: Mapping[str, str],
    staging: str,
    scale: int,
    batch_rows: int,
    total: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Every month of the RS table into ``staging``; (rows inserted, identical rows)."""
    database, table = settings.database, settings.table
    insert = (
        f"INSERT INTO {qualified_name(database, staging)} {column_list(ENVELOPE_COLUMNS)} VALUES"
    )
    copied = identical = 0
    months = [int(m) for (m,) in _rows(reader, partitions_query(database, table))]
    batch: list[tuple[Any, ...]] = []
    for month in months:
        sql = partition_query(database, table, columns, month)
        try:
            grouped = reader.execute_iter(sql, settings={"max_block_size": batch_rows})
            for group in grouped:
                identical += int(group[5]) - 1
                for row in envelope_rows((group,), scale):
                    batch.append(row)
                    if len(batch) >= batch_rows:
                        copied += _insert(writer, insert, batch)
                        if progress is not None:
                            progress(copied, total)
        except ClickHouseError:
            raise
        except Exception as exc:
            raise _failed(f"cannot copy {database}.{table}", exc, reader) from exc
    if batch:
        copied += _insert(writer, insert, batch)
    if progress is not None:
        progress(copied, total)
    return copied, identical


def _insert(writer: Client, insert: str, batch: list[tuple[Any, ...]]) -> int:
    try:
        writer.execute(insert, batch)
    except Exception as exc:
        raise _failed("cannot insert the copy", exc, writer) from exc
    done = len(batch)
    batch.clear()
    return done


def _create_table(source: str, database: str, table: str, version: tuple[int, ...]) -> str:
    """Migration 0001's ``CREATE TABLE`` statement, for ``table``."""
    migration = next((m for m in read_migrations(source) if m.id.startswith("0001")), None)
    if migration is None:
        raise MigrationError(f"no migration 0001 in {source}")
    migration.load()
    statements = migration.module.statements(database, table, version)
    creates = [s for s in statements if str(s).startswith("CREATE TABLE")]
    if len(creates) != 1:
        raise MigrationError(f"migration {migration.id} must hold one table definition")
    return str(creates[0])


def _columns(client: Client, database: str, table: str) -> dict[str, str]:
    rows = _rows(
        client,
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s",
        {"db": database, "t": table},
    )
    return {str(name): str(kind) for name, kind in rows}


def _columns_or_refuse(client: Client, database: str, table: str) -> None:
    """Pass for a table that is already ours; raise for a missing or foreign one."""
    columns = _columns(client, database, table)
    if not columns:
        raise MigrationError(f"no table {database}.{table}: there is no Ponix RS table to upgrade")
    if "id" not in columns:
        missing = ", ".join(sorted(RS_COLUMNS - columns.keys()))
        raise MigrationError(
            f"{database}.{table} is not a Ponix RS envelope table (no column(s) {missing})"
        )


def _check_rs_types(database: str, table: str, columns: Mapping[str, str]) -> None:
    for column in ("occurred_at", "processed_at"):
        kind = columns.get(column, "")
        if not (kind == "DateTime" or kind.startswith("DateTime(")):
            raise MigrationError(
                f"{database}.{table}.{column} is {kind or 'missing'}, not Ponix RS's DateTime"
            )


def _count(client: Client, database: str, table: str) -> int:
    return int(_rows(client, f"SELECT count() FROM {qualified_name(database, table)}")[0][0])


def _rows(client: Client, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
    try:
        rows: list[Any] = client.execute(sql, params)
    except Exception as exc:
        raise translate_error(exc, client) from exc
    return rows


def _run(client: Client, sql: str) -> None:
    try:
        client.execute(sql)
    except Exception as exc:
        raise _failed(f"cannot run {sql.split(' (', 1)[0]}", exc, client) from exc


def _failed(doing: str, exc: BaseException, client: Client) -> ClickHouseError:
    """A server that is not there stays what it is; a rejected statement fails the upgrade."""
    error = translate_error(exc, client)
    if isinstance(error, QueryError):
        return MigrationError(f"{doing}: {error.message}")
    return error
