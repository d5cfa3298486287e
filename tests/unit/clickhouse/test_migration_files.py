"""The migration files: both DDL branches, the shipped copy, and where migrate() reads them."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from yoyo import read_migrations

from ponix_clickhouse import envelope_layout, migrations_dir
from ponix_config import ClickHouseSettings, load_settings

REPO_MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"
PACKAGED = Path(__file__).resolve().parents[3] / "libs/clickhouse/src/ponix_clickhouse/migrations"
VERSIONS_18 = [(18, 16, 1), (19, 17), (20, 0, 9)]
VERSIONS_MODERN = [(20, 1), (22, 2, 1), (24, 8), (25, 3), (26, 9, 2, 1)]


def load(directory: Path, migration_id: str) -> ModuleType:
    migration = next(m for m in read_migrations(str(directory)) if m.id == migration_id)
    migration.load()
    module: ModuleType = migration.module
    return module


@pytest.fixture(scope="module")
def envelopes() -> ModuleType:
    return load(REPO_MIGRATIONS, "0001_create_processed_envelopes")


@pytest.fixture(scope="module")
def cluster() -> ModuleType:
    return load(REPO_MIGRATIONS / "cluster", "0001_create_processed_envelopes_cluster")


def _sources(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in {".py", ".sql"} and "__pycache__" not in p.parts
    }


def test_the_repo_migrations_folder_is_the_packaged_one() -> None:
    # One copy: migrations/ links to the folder the ponix-clickhouse package ships.
    assert REPO_MIGRATIONS.resolve() == PACKAGED.resolve()
    assert _sources(PACKAGED), "no migrations in the package"


def test_only_the_single_server_migration_is_applied_by_default() -> None:
    assert [m.id for m in read_migrations(str(REPO_MIGRATIONS))] == [
        "0001_create_processed_envelopes"
    ]


@pytest.mark.parametrize("version", VERSIONS_18)
def test_old_servers_get_datetime_and_no_dedup_window(
    envelopes: ModuleType, version: tuple[int, ...]
) -> None:
    create_db, create_table, _ = envelopes.statements("ponix", "events", version)
    assert create_db == "CREATE DATABASE IF NOT EXISTS `ponix`"
    assert "`occurred_at` DateTime('UTC')" in create_table
    assert "`processed_at` DateTime('UTC')" in create_table
    assert "DateTime64" not in create_table
    assert "SETTINGS" not in create_table
    assert "JSON" not in create_table


@pytest.mark.parametrize("version", VERSIONS_MODERN)
def test_modern_servers_get_datetime64_dedup_window_and_json(
    envelopes: ModuleType, version: tuple[int, ...]
) -> None:
    _, create_table, create_view = envelopes.statements("ponix", "events", version)
    assert "`occurred_at` DateTime64(3, 'UTC')" in create_table
    dedup = "SETTINGS non_replicated_deduplication_window = 1000" in create_table
    assert dedup is (version >= (22, 2))
    json = "`data_json` JSON ALIAS CAST(`data`, 'JSON')" in create_table
    assert json is (version >= (25, 3))
    assert ("`data_json`" in create_view) is json


@pytest.mark.parametrize("version", VERSIONS_18 + VERSIONS_MODERN)
def test_every_branch_is_idempotent_replacing_and_agrees_with_the_lib(
    envelopes: ModuleType, version: tuple[int, ...]
) -> None:
    statements = envelopes.statements("ponix", "events", version)
    assert all(" IF NOT EXISTS " in sql for sql in statements)
    create_table, create_view = statements[1], statements[2]
    assert "ENGINE = ReplacingMergeTree()" in create_table
    assert "PARTITION BY toYYYYMM(`occurred_at`)" in create_table
    assert "ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`)" in create_table
    assert create_view.startswith("CREATE VIEW IF NOT EXISTS `ponix`.`events_exact` AS SELECT")
    assert create_view.endswith("FROM `ponix`.`events` FINAL")
    layout = envelope_layout(version)
    for column, kind in zip(layout.columns, layout.types, strict=True):
        assert f"`{column}` {kind}" in create_table


def test_rollback_drops_view_then_table_and_keeps_the_database(envelopes: ModuleType) -> None:
    assert envelopes.rollback_statements("ponix", "events") == [
        "DROP TABLE IF EXISTS `ponix`.`events_exact`",
        "DROP TABLE IF EXISTS `ponix`.`events`",
    ]


def test_names_are_validated(envelopes: ModuleType) -> None:
    with pytest.raises(ValueError, match="not a plain identifier"):
        envelopes.statements("ponix; DROP DATABASE x", "events", (18, 16))


def test_cluster_variant_is_replicated_and_distributed(cluster: ModuleType) -> None:
    statements = cluster.statements("ponix", "events", (25, 3))
    assert all("ON CLUSTER '{cluster}'" in sql for sql in statements)
    local, distributed = statements[1], statements[2]
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ponix/" in local
    assert "ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`)" in local
    assert "Distributed('{cluster}', 'ponix', 'events_local'" in distributed
    assert "cityHash64(`organization_id`, `end_device_id`)" in distributed
    assert statements[3].endswith("FROM `ponix`.`events` FINAL")
    with pytest.raises(RuntimeError, match=r">= 22\.2"):
        cluster.statements("ponix", "events", (18, 16, 1))


def test_migrations_dir_prefers_argument_then_settings_then_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("CLICKHOUSE_MIGRATIONS_DIR", raising=False)
    monkeypatch.delenv("PONIX_CLICKHOUSE_MIGRATIONS_DIR", raising=False)
    default = load_settings(ClickHouseSettings)
    assert default.migrations_dir is None
    assert migrations_dir() == PACKAGED
    assert migrations_dir(settings=default) == PACKAGED
    assert (migrations_dir() / "0001_create_processed_envelopes.py").is_file()
    monkeypatch.setenv("CLICKHOUSE_MIGRATIONS_DIR", str(tmp_path))
    configured = load_settings(ClickHouseSettings)
    assert configured.migrations_dir == tmp_path
    assert migrations_dir(settings=configured) == tmp_path
    assert migrations_dir(REPO_MIGRATIONS, settings=configured) == REPO_MIGRATIONS
    # Read from the settings only: the environment alone does not steer migrations_dir().
    assert migrations_dir() == PACKAGED
