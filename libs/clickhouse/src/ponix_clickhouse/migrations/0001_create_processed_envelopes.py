"""Create the envelope database (if missing), table and exact-read view.

The DDL depends on the server's version (tests cover every branch):

======================  ==================  ======================  =============================
                        18.16 (< 20.1)      >= 20.1                 >= 22.2 / >= 25.3
======================  ==================  ======================  =============================
occurred_at,            DateTime('UTC')     DateTime64(3, 'UTC')    (same)
processed_at            (seconds)           (milliseconds)
deduplication           none                none                    22.2: SETTINGS
                                                                    non_replicated_deduplication_
                                                                    window = 1000, so inserts can
                                                                    carry insert_deduplication_token
data                    String (JSON text)  String (JSON text)      25.3: plus data_json JSON ALIAS
======================  ==================  ======================  =============================

``data`` is the JSON text everywhere: it is what clickhouse-driver inserts fastest and the same
on every server. Where the JSON type is production-ready (25.3) ``data_json`` parses it at read
time (``SELECT data_json.temperature``), costing nothing at insert and no storage.

Rows are idempotent under redelivery: ReplacingMergeTree whose sorting key ends with ``id``
collapses duplicates at merge time; ``<table>_exact`` reads ``FINAL`` for exact answers.

Safe to re-run: every statement is ``IF NOT EXISTS``. Rolling back drops the view and the table,
with every stored envelope; the database stays (yoyo's bookkeeping lives there).

Cluster deployments use ``cluster/0001_create_processed_envelopes_cluster.py`` instead (never
applied automatically).
"""

from __future__ import annotations

from typing import Protocol

from yoyo import step

from ponix_clickhouse.sql import quote_identifier as _quote

__depends__: set[str] = set()

DATETIME64_SINCE = (20, 1)
DEDUP_WINDOW_SINCE = (22, 2)
JSON_TYPE_SINCE = (25, 3)


class Connection(Protocol):
    """What ponix_clickhouse's yoyo backend hands to a step."""

    database: str
    table: str
    server_version: tuple[int, ...]

    def execute(self, sql: str) -> object: ...


def statements(database: str, table: str, version: tuple[int, ...]) -> list[str]:
    """The DDL this migration runs against a server of ``version``."""
    db, tbl, view = _quote(database), _quote(table), _quote(f"{table}_exact")
    moment = "DateTime64(3, 'UTC')" if version >= DATETIME64_SINCE else "DateTime('UTC')"
    columns = [
        "`id` String",
        "`organization_id` String",
        "`end_device_id` String",
        f"`occurred_at` {moment}",
        f"`processed_at` {moment}",
        "`data` String",
    ]
    exact = ["`id`", "`organization_id`", "`end_device_id`", "`occurred_at`"]
    exact += ["`processed_at`", "`data`"]
    if version >= JSON_TYPE_SINCE:
        columns.append("`data_json` JSON ALIAS CAST(`data`, 'JSON')")
        exact.append("`data_json`")
    settings = ""
    if version >= DEDUP_WINDOW_SINCE:
        settings = " SETTINGS non_replicated_deduplication_window = 1000"
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.{tbl} ({', '.join(columns)}) "
        "ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(`occurred_at`) "
        f"ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`){settings}",
        f"CREATE VIEW IF NOT EXISTS {db}.{view} AS SELECT {', '.join(exact)} FROM {db}.{tbl} FINAL",
    ]


def rollback_statements(database: str, table: str) -> list[str]:
    """The DDL that undoes :func:`statements` (the database stays)."""
    db, tbl, view = _quote(database), _quote(table), _quote(f"{table}_exact")
    # DROP TABLE drops views too, on 18.16 as on modern servers.
    return [f"DROP TABLE IF EXISTS {db}.{view}", f"DROP TABLE IF EXISTS {db}.{tbl}"]


def apply(conn: Connection) -> None:
    for sql in statements(conn.database, conn.table, conn.server_version):
        conn.execute(sql)


def rollback(conn: Connection) -> None:
    for sql in rollback_statements(conn.database, conn.table):
        conn.execute(sql)


step(apply, rollback)
