"""The audit's SQL: which of a chunk's ids the table holds, and which have duplicate rows.

The chunk's ids travel as an external table, so only matching ids come back however large the
table is. Presence needs no ``FINAL``: any row will do. Duplicates do (rows redelivered by NATS
are collapsed at merge time), but ``FINAL`` merges what it reads, so it only runs for the few ids
that have more than one row before merging. ``id`` ends the sorting key, so filtering on it
before ``FINAL`` merges is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ponix_cli.audit.report import Duplicate
from ponix_cli.clickhouse_read import ExternalTable, all_rows

if TYPE_CHECKING:
    from clickhouse_driver import Client

    from ponix_config import ClickHouseSettings

IDS_TABLE: Final = "ponix_audit_ids"
_IN_IDS: Final = f"id IN (SELECT id FROM {IDS_TABLE})"


def row_counts(
    client: Client, clickhouse: ClickHouseSettings, ids: Sequence[str]
) -> dict[str, int]:
    """id -> rows (before merging) for the ids of ``ids`` the table holds; blocks."""
    from ponix_clickhouse import qualified_name

    if not ids:
        return {}
    table = qualified_name(clickhouse.database, clickhouse.table)
    sql = f"SELECT id, count() FROM {table} WHERE {_IN_IDS} GROUP BY id"
    return {str(i): int(n) for i, n in all_rows(client, sql, external_tables=[_ids(ids)])}


def duplicated(
    client: Client, clickhouse: ClickHouseSettings, counts: dict[str, int]
) -> list[Duplicate]:
    """The ids of ``counts`` with more than one row in the exact read (``FINAL``); blocks."""
    from ponix_clickhouse import qualified_name

    candidates = [i for i, n in counts.items() if n > 1]
    if not candidates:
        return []
    table = qualified_name(clickhouse.database, clickhouse.table)
    sql = (
        f"SELECT id, count() AS n FROM {table} FINAL WHERE {_IN_IDS} "
        "GROUP BY id HAVING n > 1 ORDER BY n DESC, id"
    )
    rows = all_rows(client, sql, external_tables=[_ids(candidates)])
    return [Duplicate(str(i), int(n)) for i, n in rows]


def _ids(ids: Sequence[str]) -> ExternalTable:
    return ExternalTable(IDS_TABLE, (("id", "String"),), [{"id": i} for i in ids])
