"""upgrade_rs_table() on a table created with Ponix RS's own DDL (ClickHouse 18.16 here; the
modern server's DDL and SQL are in test_rs_upgrade_modern.py): every row kept, ids derived
deterministically, the RS table kept aside, and the migrations refusing to run over it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from ponix_clickhouse import (
    MigrationError,
    make_client,
    migrate,
    parse_version,
    read_table_layout,
    rs_envelope_id,
    upgrade_rs_table,
)
from ponix_proto import envelope_id_timestamp
from tests.integration.clickhouse.conftest import MakeSettings, Query
from tests.support.ponix_rs import (
    GOOSE_DDL,
    GOOSE_VERSIONS,
    IDENTICAL,
    ROWS,
    RS_DDL,
    RS_INIT_DDL,
    for_server,
    insert_rows,
)

pytestmark = pytest.mark.integration

TABLE = "processed_envelopes"
RS_MIGRATED_AT = datetime(2025, 11, 4, 11, 1, 1, tzinfo=UTC)


@pytest.fixture
def version(query: Query) -> tuple[int, ...]:
    return parse_version(str(query("SELECT version()")[0][0]))


@pytest.fixture
def rs_database(query: Query, clickhouse_db: str, version: tuple[int, ...]) -> str:
    """The test's database as Ponix RS leaves it: goose's table and the envelope table."""
    query(GOOSE_DDL.format(table=f"{clickhouse_db}.goose_db_version"))
    query(
        f"INSERT INTO {clickhouse_db}.goose_db_version (version_id, is_applied, date, tstamp) "
        "VALUES",
        [(v, 1, RS_MIGRATED_AT.date(), RS_MIGRATED_AT) for v in GOOSE_VERSIONS],
    )
    query(for_server(RS_DDL.format(table=f"{clickhouse_db}.{TABLE}"), version))
    query(*insert_rows(f"{clickhouse_db}.{TABLE}", ROWS))
    return clickhouse_db


def _content(query: Query, table: str, final: str = "") -> Counter[tuple[object, ...]]:
    rows = query(
        "SELECT organization_id, end_device_id, toUInt32(occurred_at), toUInt32(processed_at), "
        f"data FROM {table} {final}"
    )
    return Counter(tuple(row) for row in rows)


def test_every_row_is_kept_with_an_id_derived_from_it(
    query: Query, make_settings: MakeSettings, rs_database: str
) -> None:
    settings = make_settings()
    table = f"{rs_database}.{TABLE}"
    before = _content(query, table)

    report = upgrade_rs_table(settings, batch_rows=2)  # several batches

    assert report.upgraded
    assert (report.rows, report.identical) == (len(ROWS), IDENTICAL)
    assert report.backup == f"{rs_database}.{TABLE}_rs"
    assert report.applied == ("0001_create_processed_envelopes",)
    assert _content(query, table) == before
    assert _content(query, table, "FINAL") == before  # identical RS rows are not collapsed
    assert _content(query, report.backup) == before  # the RS table, untouched
    assert query(f"SELECT count() FROM {rs_database}.goose_db_version")[0][0] == 3
    assert query(f"SELECT count() FROM {rs_database}.{TABLE}_exact")[0][0] == len(ROWS)

    rows = query(
        f"SELECT id, organization_id, end_device_id, toUInt32(occurred_at), "
        f"toUInt32(processed_at), data FROM {table}"
    )
    ids = [row[0] for row in rows]
    assert len(set(ids)) == len(ROWS)
    for envelope_id, org, device, occurred, processed, data in rows:
        assert envelope_id_timestamp(envelope_id) == datetime.fromtimestamp(occurred, UTC)
        assert envelope_id in {
            rs_envelope_id(org, device, occurred, processed, data, n) for n in range(3)
        }

    # The table is ours now: the writer's layout check passes, and nothing is left to upgrade.
    client_settings = make_settings()
    assert upgrade_rs_table(client_settings).upgraded is False
    assert migrate(client_settings).applied == ()
    client = make_client(client_settings)
    try:
        layout = read_table_layout(client, rs_database, TABLE)
    finally:
        client.disconnect()
    assert layout.columns[0] == "id"


def test_the_same_rs_table_gets_the_same_ids_again(
    query: Query, make_settings: MakeSettings, rs_database: str
) -> None:
    table = f"{rs_database}.{TABLE}"
    upgrade_rs_table(make_settings())
    first = sorted(row[0] for row in query(f"SELECT id FROM {table}"))
    query(f"DROP TABLE {rs_database}.{TABLE}_exact")
    query(f"DROP TABLE {table}")
    query(f"RENAME TABLE {table}_rs TO {table}")

    upgrade_rs_table(make_settings())
    assert sorted(row[0] for row in query(f"SELECT id FROM {table}")) == first


def test_migrations_refuse_an_rs_table_and_name_the_upgrade(
    query: Query, make_settings: MakeSettings, rs_database: str
) -> None:
    with pytest.raises(MigrationError) as refused:
        migrate(make_settings())
    assert refused.value.code == "clickhouse.migration_failed"
    assert "Ponix RS table (no id column)" in str(refused.value)
    assert "ponix migrate --from-rs" in str(refused.value)
    assert _content(query, f"{rs_database}.{TABLE}") == Counter(
        (
            r.organization_id,
            r.end_device_id,
            int(r.occurred_at.timestamp()),
            int(r.processed_at.timestamp()),
            r.data_text,
        )
        for r in ROWS
    )


def test_rs_first_schema_without_organization_reads_it_as_empty(
    query: Query, make_settings: MakeSettings, clickhouse_db: str, version: tuple[int, ...]
) -> None:
    table = f"{clickhouse_db}.{TABLE}"
    query(for_server(RS_INIT_DDL.format(table=table), version))
    query(*insert_rows(table, ROWS, organization=False))

    report = upgrade_rs_table(make_settings())

    assert report.rows == len(ROWS)
    assert {row[0] for row in query(f"SELECT DISTINCT organization_id FROM {table}")} == {""}


def test_a_kept_rs_table_in_the_way_stops_before_anything_changes(
    query: Query, make_settings: MakeSettings, rs_database: str, version: tuple[int, ...]
) -> None:
    query(for_server(RS_DDL.format(table=f"{rs_database}.{TABLE}_rs"), version))
    with pytest.raises(MigrationError, match=f"{TABLE}_rs already exists"):
        upgrade_rs_table(make_settings())
    assert query(f"SELECT count() FROM {rs_database}.{TABLE}")[0][0] == len(ROWS)


def test_no_table_is_one_line(make_settings: MakeSettings) -> None:
    with pytest.raises(MigrationError, match=r"no table .*: there is no Ponix RS table"):
        upgrade_rs_table(make_settings())
