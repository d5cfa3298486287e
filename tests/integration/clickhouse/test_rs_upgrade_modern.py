"""The ``--from-rs`` upgrade's SQL on a modern engine (chdb), against a table created with Ponix
RS's DDL exactly as written (``data JSON NOT NULL``): the month list, the grouped read, the
staging table from migration 0001 and the swap.

chdb has no native-protocol port, so the rows go from the grouped read through
``envelope_rows`` (the same code the upgrade runs) and back in as JSON lines; the driver path
is covered on 18.16 in test_rs_upgrade.py.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from ponix_clickhouse import ENVELOPE_COLUMNS, envelope_layout, is_rs_table, parse_version
from ponix_clickhouse.rs_upgrade import (
    envelope_rows,
    partition_query,
    partitions_query,
    staging_table_statement,
    swap_statement,
)
from tests.support.ponix_rs import IDENTICAL, ROWS, RS_DDL, insert_values

pytestmark = pytest.mark.integration

DB, TABLE, STAGING, BACKUP = "ponix", "processed_envelopes", "pe_from_rs", "processed_envelopes_rs"


@pytest.fixture
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session_module = pytest.importorskip("chdb.session")
    session = session_module.Session(str(tmp_path_factory.mktemp("chdb-rs")))
    yield session
    session.close()


def lines(chdb: Any, sql: str) -> list[Any]:
    text = str(chdb.query(sql, "JSONCompactEachRow")).strip()
    return [json.loads(line) for line in text.splitlines()]


def test_rs_ddl_as_written_upgrades_on_a_modern_engine(chdb: Any) -> None:
    version = parse_version(lines(chdb, "SELECT version()")[0][0])
    chdb.query(f"CREATE DATABASE {DB}")
    chdb.query(RS_DDL.format(table=f"{DB}.{TABLE}"))
    chdb.query(insert_values(f"{DB}.{TABLE}", ROWS))
    columns = dict(
        lines(
            chdb,
            f"SELECT name, type FROM system.columns WHERE database = '{DB}' AND table = '{TABLE}'",
        )
    )
    assert columns["data"] == "JSON"
    assert is_rs_table(columns)

    chdb.query(staging_table_statement(DB, STAGING, version))
    scale = envelope_layout(version).time_scale("occurred_at")
    assert scale == 1000  # DateTime64(3) on a modern server
    grouped = []
    for (month,) in lines(chdb, partitions_query(DB, TABLE)):
        grouped += lines(chdb, partition_query(DB, TABLE, columns, int(month)))
    copied = list(envelope_rows(grouped, scale))
    assert len(copied) == len(ROWS)
    assert sum(int(copies) - 1 for *_, copies in grouped) == IDENTICAL
    assert len({row[0] for row in copied}) == len(ROWS)
    payload = "\n".join(
        json.dumps(
            {
                **dict(zip(ENVELOPE_COLUMNS, row, strict=True)),
                "occurred_at": _ms_text(row[3]),
                "processed_at": _ms_text(row[4]),
            }
        )
        for row in copied
    )
    chdb.query(f"INSERT INTO {DB}.{STAGING} FORMAT JSONEachRow\n{payload}")
    chdb.query(swap_statement(DB, TABLE, STAGING, BACKUP))

    tables = {t for (t,) in lines(chdb, f"SHOW TABLES FROM {DB}")}
    assert {TABLE, BACKUP} <= tables
    assert STAGING not in tables
    read = (
        "SELECT organization_id, end_device_id, toUInt32(occurred_at), toUInt32(processed_at), "
        "{data} FROM {table}"
    )
    ours = Counter(map(tuple, lines(chdb, read.format(data="data", table=f"{DB}.{TABLE} FINAL"))))
    kept = Counter(
        map(tuple, lines(chdb, read.format(data="toJSONString(data)", table=f"{DB}.{BACKUP}")))
    )
    assert ours == kept
    assert sum(ours.values()) == len(ROWS)
    stored = lines(chdb, f"SELECT end_device_id, data FROM {DB}.{TABLE} FINAL")
    # The JSON text reads back as RS's data: an integer stays an integer, text stays text.
    assert Counter((d, json.dumps(json.loads(text), sort_keys=True)) for d, text in stored) == (
        Counter((r.end_device_id, json.dumps(r.data, sort_keys=True)) for r in ROWS)
    )


def _ms_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
