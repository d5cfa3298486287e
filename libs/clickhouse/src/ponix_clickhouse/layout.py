"""The envelope table's columns, what each server version gets, and what a live table has.

Row values for the writer follow :data:`ENVELOPE_COLUMNS`. Timestamps are fastest as integers
(clickhouse-driver passes them through; a ``datetime`` costs ~6 µs of conversion per value):
``seconds * scale + nanos // (1_000_000_000 // scale)`` with ``scale = layout.time_scale(col)``,
i.e. epoch seconds for ``DateTime`` and epoch milliseconds for ``DateTime64(3)``. Read the scale
from the live table (:func:`read_table_layout`), never from the server version alone: a table
created on 18.16 keeps ``DateTime`` after the server is upgraded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from clickhouse_driver import Client

from ponix_clickhouse.client import server_version as read_version
from ponix_clickhouse.client import translate_error
from ponix_clickhouse.errors import SchemaError
from ponix_clickhouse.sql import check_identifier

ENVELOPE_COLUMNS: Final = (
    "id",
    "organization_id",
    "end_device_id",
    "occurred_at",
    "processed_at",
    "data",
)
"""Insert order of an envelope row: (id, organization_id, end_device_id, occurred_at,
processed_at, data). ``id`` is the UUIDv7 text; ``data`` is the JSON text of the Struct."""

ENVELOPE_ID_COLUMN: Final = "id"

DATETIME64_SINCE: Final = (20, 1)
"""DateTime64(3, 'UTC') (millisecond timestamps) exists from 20.1; older servers get DateTime."""
DEDUP_TOKEN_SINCE: Final = (22, 2)
"""insert_deduplication_token works on plain MergeTree (with non_replicated_deduplication_window,
itself from 21.5) from 22.2; 18.16 rejects the setting (UNKNOWN_SETTING)."""
JSON_TYPE_SINCE: Final = (25, 3)
"""The JSON type is production-ready (no experimental flag) from 25.3."""

RS_COLUMNS: Final = frozenset({"end_device_id", "occurred_at", "processed_at", "data"})
"""The columns of a Ponix RS envelope table (no ``id``), which ``migrate --from-rs`` upgrades."""

_DATETIME64: Final = re.compile(r"DateTime64\((\d+)")


@dataclass(frozen=True, slots=True)
class TableLayout:
    """A table's insertable columns and their ClickHouse types, on a given server version."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    server_version: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.columns) != len(self.types):
            raise ValueError("columns and types differ in length")

    def type_of(self, column: str) -> str:
        return self.types[self.columns.index(column)]

    def time_scale(self, column: str = "occurred_at") -> int:
        """Integer units per second the driver expects for ``column``: 1 or 10**precision."""
        kind = self.type_of(column)
        match = _DATETIME64.search(kind)
        if match:
            return int(10 ** int(match.group(1)))
        if "DateTime" in kind:
            return 1
        raise SchemaError(f"column {column!r} is {kind}, not a DateTime")

    @property
    def dedup_tokens(self) -> bool:
        """Whether inserts may carry ``insert_deduplication_token``."""
        return self.server_version >= DEDUP_TOKEN_SINCE


def timestamp_type(version: tuple[int, ...]) -> str:
    """The type of occurred_at/processed_at that migration 0001 creates on ``version``."""
    return "DateTime64(3, 'UTC')" if version >= DATETIME64_SINCE else "DateTime('UTC')"


def envelope_layout(version: tuple[int, ...]) -> TableLayout:
    """The envelope table's layout as migration 0001 creates it on a server of ``version``."""
    moment = timestamp_type(version)
    types = ("String", "String", "String", moment, moment, "String")
    return TableLayout(ENVELOPE_COLUMNS, types, tuple(version))


def read_table_layout(
    client: Client,
    database: str,
    table: str,
    columns: tuple[str, ...] = ENVELOPE_COLUMNS,
    *,
    server_version: tuple[int, ...] | None = None,
) -> TableLayout:
    """``columns`` of the live ``database.table`` with their types; blocks.

    Raises :class:`SchemaError` when the table or one of the columns does not exist.
    """
    check_identifier(database)
    check_identifier(table)
    version = server_version if server_version is not None else read_version(client)
    try:
        rows = client.execute(
            "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s",
            {"db": database, "t": table},
        )
    except Exception as exc:
        raise translate_error(exc, client) from exc
    found = {str(name): str(kind) for name, kind in rows}
    if not found:
        raise SchemaError(f"table {database}.{table} does not exist (run the migrations)")
    missing = [c for c in columns if c not in found]
    if missing:
        raise SchemaError(f"table {database}.{table} has no column(s) {', '.join(missing)}")
    return TableLayout(tuple(columns), tuple(found[c] for c in columns), version)


def is_rs_table(columns: Mapping[str, str]) -> bool:
    """Whether a table with these ``{name: type}`` columns is a Ponix RS envelope table."""
    return "id" not in columns and columns.keys() >= RS_COLUMNS
