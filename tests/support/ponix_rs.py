"""A Ponix RS database as RS's goose migrations leave it, for the ``--from-rs`` upgrade tests.

RS's first migration created ``processed_envelopes`` without ``organization_id``; its second
rebuilt it with the column first (old rows get ``''``). Both are here, plus goose's own
bookkeeping table. RS needs the JSON type (a modern server); ClickHouse 18.16 has neither JSON
nor ``NOT NULL`` column modifiers, so there the same DDL runs with ``data String`` and without
the modifiers: the closest an RS table on 18.16 can be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

# RS's schema after its first goose migration (20251026224743_init).
RS_INIT_DDL: Final = """CREATE TABLE IF NOT EXISTS {table} (
  end_device_id String NOT NULL,
  occurred_at DateTime NOT NULL,
  processed_at DateTime NOT NULL,
  data JSON NOT NULL
) ENGINE = MergeTree()
PRIMARY KEY (occurred_at, end_device_id)
ORDER BY (occurred_at, end_device_id)
PARTITION BY toYYYYMM(occurred_at)
SETTINGS index_granularity = 8192"""

# RS's schema after its second goose migration (20251104110101_add_organization_id).
RS_DDL: Final = """CREATE TABLE IF NOT EXISTS {table} (
  organization_id String NOT NULL,
  end_device_id String NOT NULL,
  occurred_at DateTime NOT NULL,
  processed_at DateTime NOT NULL,
  data JSON NOT NULL
) ENGINE = MergeTree()
PRIMARY KEY (organization_id, occurred_at, end_device_id)
ORDER BY (organization_id, occurred_at, end_device_id)
PARTITION BY toYYYYMM(occurred_at)
SETTINGS index_granularity = 8192"""

# goose's version table in its ClickHouse dialect.
GOOSE_DDL: Final = """CREATE TABLE IF NOT EXISTS {table} (
  version_id Int64,
  is_applied UInt8,
  date Date default now(),
  tstamp DateTime default now()
) ENGINE = MergeTree() ORDER BY (date)"""
GOOSE_VERSIONS: Final = (0, 20251026224743, 20251104110101)


def for_server(ddl: str, version: tuple[int, ...]) -> str:
    """``ddl`` as it can run on ``version``: as written on a modern server; on 18.16 without
    ``NOT NULL`` and with ``data String``."""
    if version >= (24, 1):
        return ddl
    return re.sub(r"\bJSON\b", "String", ddl.replace(" NOT NULL", ""))


@dataclass(frozen=True, slots=True)
class RsRow:
    """One row of the RS table, timestamps as aware UTC datetimes (RS kept seconds)."""

    organization_id: str
    end_device_id: str
    occurred_at: datetime
    processed_at: datetime
    data: dict[str, object]

    @property
    def data_text(self) -> str:
        return json.dumps(self.data, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Three months, two organizations, a device name with a quote and non-ASCII data, and a row RS
# stored three times (a redelivery without dedup stores the envelope again).
ROWS: Final[Sequence[RsRow]] = (
    RsRow("acme", "sensor-1", _at("2025-10-30 23:59:59"), _at("2025-10-31 00:00:01"), {"t": 21.5}),
    RsRow("acme", "sensor-1", _at("2025-11-01 00:00:00"), _at("2025-11-01 00:00:02"), {"t": 21.75}),
    RsRow("acme", "sensor-2", _at("2025-11-01 00:00:00"), _at("2025-11-01 00:00:02"), {"t": 3}),
    RsRow("globex", "d'1", _at("2025-11-15 12:00:00"), _at("2025-11-15 12:00:00"), {"où": "là"}),
    RsRow("globex", "d'1", _at("2025-11-15 12:00:00"), _at("2025-11-15 12:00:00"), {"où": "là"}),
    RsRow("globex", "d'1", _at("2025-11-15 12:00:00"), _at("2025-11-15 12:00:00"), {"où": "là"}),
    RsRow("", "legacy", _at("2025-12-24 18:30:00"), _at("2025-12-24 18:30:05"), {"n": {"a": 1}}),
)
IDENTICAL: Final = 2
"""Rows of :data:`ROWS` identical to an earlier one."""


def insert_values(table: str, rows: Sequence[RsRow], *, organization: bool = True) -> str:
    """``INSERT INTO table VALUES (...)``: timestamps as epoch seconds (whatever the server's
    time zone), ``data`` as its JSON text (both servers parse a JSON column from it);
    ``organization=False`` for RS's first schema, which had no organization_id."""

    def quote(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    values = ", ".join(
        "("
        + ", ".join(
            ([quote(r.organization_id)] if organization else [])
            + [
                quote(r.end_device_id),
                str(int(r.occurred_at.timestamp())),
                str(int(r.processed_at.timestamp())),
                quote(r.data_text),
            ]
        )
        + ")"
        for r in rows
    )
    columns = "end_device_id, occurred_at, processed_at, data"
    if organization:
        columns = "organization_id, " + columns
    return f"INSERT INTO {table} ({columns}) VALUES {values}"


def insert_rows(
    table: str, rows: Sequence[RsRow], *, organization: bool = True
) -> tuple[str, list[tuple[object, ...]]]:
    """:func:`insert_values` for clickhouse-driver, which takes INSERT data as parameters:
    ``(sql, rows)``."""
    columns = "end_device_id, occurred_at, processed_at, data"
    if organization:
        columns = "organization_id, " + columns
    data = [
        ((r.organization_id,) if organization else ())
        + (
            r.end_device_id,
            int(r.occurred_at.timestamp()),
            int(r.processed_at.timestamp()),
            r.data_text,
        )
        for r in rows
    ]
    return f"INSERT INTO {table} ({columns}) VALUES", data
