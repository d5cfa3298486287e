"""The envelope table for a ClickHouse cluster (replicas via Keeper). Never applied by default.

yoyo reads one directory, not its subdirectories, so this file only runs when you point the
migrations at it (``CLICKHOUSE_MIGRATIONS_DIR=.../migrations/cluster ponix migrate``) instead of
the single-server ``0001``. Modern servers only (>= 22.2); it relies on the ``{cluster}``,
``{shard}`` and ``{replica}`` macros of each node's config and on distributed DDL (Keeper).

* ``<table>_local`` on every node: ReplicatedReplacingMergeTree, same columns and sorting key
  as the single-server table, so redeliveries collapse on the replica that holds them.
* ``<table>``: a Distributed table over the locals, sharded by ``(organization_id,
  end_device_id)``. Every copy of an envelope has the same organization and device, so all its
  duplicates land on the same shard and ``FINAL`` stays exact per shard.
* ``<table>_exact``: the same ``FINAL`` view, over the Distributed table.

Run migrations against one node. The lock of ``ponix_clickhouse``'s yoyo backend is only safe
when every migrator talks to the same server (replication lag breaks read-your-writes).
This file's DDL is rendered by unit tests but not executed: no test cluster exists here.
"""

from __future__ import annotations

from typing import Protocol

from yoyo import step

from ponix_clickhouse.sql import quote_identifier as _quote

__depends__: set[str] = set()

JSON_TYPE_SINCE = (25, 3)


class Connection(Protocol):
    database: str
    table: str
    server_version: tuple[int, ...]

    def execute(self, sql: str) -> object: ...


def statements(database: str, table: str, version: tuple[int, ...]) -> list[str]:
    if version < (22, 2):
        raise RuntimeError("the cluster layout needs ClickHouse >= 22.2")
    db, tbl = _quote(database), _quote(table)
    local, view = _quote(f"{table}_local"), _quote(f"{table}_exact")
    columns = [
        "`id` String",
        "`organization_id` String",
        "`end_device_id` String",
        "`occurred_at` DateTime64(3, 'UTC')",
        "`processed_at` DateTime64(3, 'UTC')",
        "`data` String",
    ]
    exact = "`id`, `organization_id`, `end_device_id`, `occurred_at`, `processed_at`, `data`"
    if version >= JSON_TYPE_SINCE:
        columns.append("`data_json` JSON ALIAS CAST(`data`, 'JSON')")
        exact += ", `data_json`"
    on_cluster = "ON CLUSTER '{cluster}'"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db} {on_cluster}",
        f"CREATE TABLE IF NOT EXISTS {db}.{local} {on_cluster} ({', '.join(columns)}) "
        "ENGINE = ReplicatedReplacingMergeTree("
        f"'/clickhouse/tables/{{shard}}/{database}/{table}_local', '{{replica}}') "
        "PARTITION BY toYYYYMM(`occurred_at`) "
        "ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`)",
        f"CREATE TABLE IF NOT EXISTS {db}.{tbl} {on_cluster} AS {db}.{local} "
        f"ENGINE = Distributed('{{cluster}}', '{database}', '{table}_local', "
        "cityHash64(`organization_id`, `end_device_id`))",
        f"CREATE VIEW IF NOT EXISTS {db}.{view} {on_cluster} AS "
        f"SELECT {exact} FROM {db}.{tbl} FINAL",
    ]


def rollback_statements(database: str, table: str) -> list[str]:
    db = _quote(database)
    on_cluster = "ON CLUSTER '{cluster}'"
    names = (f"{table}_exact", table, f"{table}_local")
    return [f"DROP TABLE IF EXISTS {db}.{_quote(name)} {on_cluster} SYNC" for name in names]


def apply(conn: Connection) -> None:
    for sql in statements(conn.database, conn.table, conn.server_version):
        conn.execute(sql)


def rollback(conn: Connection) -> None:
    for sql in rollback_statements(conn.database, conn.table):
        conn.execute(sql)


step(apply, rollback)
