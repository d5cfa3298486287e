"""The modern branch of migration 0001, run on chdb (the modern ClickHouse engine in process).

chdb has no native-protocol port, so this covers the DDL and the read side (FINAL, the exact
view, the JSON alias, token deduplication); the writer's wire path is covered on 18.16.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from yoyo import read_migrations

from ponix_clickhouse import envelope_layout, parse_version

pytestmark = pytest.mark.integration

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
COLUMNS = "(id, organization_id, end_device_id, occurred_at, processed_at, data)"
ROW_A = "('a', 'org', 'dev', '2024-01-01 00:00:00.123', '2024-01-01 00:00:00.456', '{\"t\":1.5}')"
ROW_B = "('b', 'org', 'dev', '2024-01-01 00:00:01.000', '2024-01-01 00:00:01.000', '{\"t\":2}')"


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    session_module = pytest.importorskip("chdb.session")
    session = session_module.Session(str(tmp_path_factory.mktemp("chdb")))
    yield session
    session.close()


@pytest.fixture(scope="module")
def envelopes() -> ModuleType:
    migration = next(m for m in read_migrations(str(REPO_MIGRATIONS)) if m.id.startswith("0001"))
    migration.load()
    module: ModuleType = migration.module
    return module


def scalar(chdb: Any, sql: str) -> str:
    return str(chdb.query(sql, "TSVRaw")).strip()


def test_modern_ddl_creates_a_table_that_collapses_redeliveries(
    chdb: Any, envelopes: ModuleType
) -> None:
    version = parse_version(scalar(chdb, "SELECT version()"))
    assert version >= (25, 3), "chdb is expected to bundle a modern engine"
    statements = envelopes.statements("ponix", "processed_envelopes", version)
    for sql in statements + statements:  # twice: re-running is a no-op
        chdb.query(sql)

    table = "ponix.processed_envelopes"
    listed = scalar(
        chdb,
        "SELECT name, type FROM system.columns WHERE database = 'ponix' "
        "AND table = 'processed_envelopes' AND default_kind != 'ALIAS' ORDER BY position",
    )
    columns = [tuple(line.split("\t")) for line in listed.splitlines()]
    layout = envelope_layout(version)
    assert columns == list(zip(layout.columns, layout.types, strict=True))
    assert "non_replicated_deduplication_window = 1000" in scalar(
        chdb,
        "SELECT create_table_query FROM system.tables WHERE database = 'ponix' "
        "AND name = 'processed_envelopes'",
    )

    chdb.query(f"INSERT INTO {table} {COLUMNS} VALUES {ROW_A}")
    chdb.query(f"INSERT INTO {table} {COLUMNS} VALUES {ROW_B}, {ROW_A}")
    assert scalar(chdb, f"SELECT count() FROM {table} FINAL") == "2"
    assert scalar(chdb, "SELECT count() FROM ponix.processed_envelopes_exact") == "2"
    assert scalar(chdb, f"SELECT occurred_at FROM {table} FINAL WHERE id = 'a'") == (
        "2024-01-01 00:00:00.123"
    )
    # data stays JSON text; data_json reads it as the JSON type.
    assert scalar(chdb, f"SELECT data_json.t FROM {table} FINAL WHERE id = 'a'") == "1.5"
    assert (
        scalar(chdb, "SELECT data_json.t FROM ponix.processed_envelopes_exact WHERE id = 'b'")
        == "2"
    )


def test_a_replayed_batch_with_the_same_token_is_dropped(chdb: Any, envelopes: ModuleType) -> None:
    version = parse_version(scalar(chdb, "SELECT version()"))
    for sql in envelopes.statements("tokens", "processed_envelopes", version):
        chdb.query(sql)
    table = "tokens.processed_envelopes"
    insert = f"INSERT INTO {table} {COLUMNS} SETTINGS insert_deduplication_token = 'batch-1' VALUES"
    chdb.query(f"{insert} {ROW_A}")
    chdb.query(f"{insert} {ROW_A}, {ROW_B}")  # same token: the server drops the whole block
    assert scalar(chdb, f"SELECT count() FROM {table}") == "1"


def test_rollback_drops_view_and_table(chdb: Any, envelopes: ModuleType) -> None:
    version = parse_version(scalar(chdb, "SELECT version()"))
    for sql in envelopes.statements("gone", "t", version):
        chdb.query(sql)
    for sql in envelopes.rollback_statements("gone", "t"):
        chdb.query(sql)
    assert scalar(chdb, "SELECT count() FROM system.tables WHERE database = 'gone'") == "0"
