"""The lib's public surface is exactly ``__all__``, and every name in it exists."""

from __future__ import annotations

import ponix_clickhouse

EXPECTED = (
    "DATETIME64_SINCE",
    "DECODE_FAILED",
    "DEDUP_TOKEN_SINCE",
    "ENVELOPE_COLUMNS",
    "INSERT_FAILURES",
    "INVALID",
    "JSON_TYPE_SINCE",
    "SUBJECT_MISMATCH",
    "TIMESTAMP_OUT_OF_RANGE",
    "TOO_LARGE",
    "BatchWriter",
    "ClickHouseAuthError",
    "ClickHouseBackend",
    "ClickHouseConnection",
    "ClickHouseError",
    "ClickHouseUnavailableError",
    "Delivery",
    "Fault",
    "InsertError",
    "InvalidIdentifierError",
    "MigrationError",
    "MigrationLockedError",
    "MigrationReport",
    "Poison",
    "QueryError",
    "QueryResult",
    "Rejected",
    "Row",
    "RowBuilder",
    "RsUpgradeReport",
    "SchemaError",
    "TableLayout",
    "TimeRange",
    "check_identifier",
    "dedup_token",
    "delivery_key",
    "envelope_layout",
    "insert_error",
    "insert_settings",
    "is_rs_table",
    "make_client",
    "migrate",
    "migrations_dir",
    "parse_version",
    "ping",
    "qualified_name",
    "quote_identifier",
    "raw_struct_json",
    "read_table_layout",
    "rs_envelope_id",
    "run_query",
    "server_version",
    "struct_json",
    "upgrade_rs_table",
)


def test_all_is_pinned() -> None:
    assert isinstance(ponix_clickhouse.__all__, tuple)
    assert ponix_clickhouse.__all__ == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in ponix_clickhouse.__all__:
        assert getattr(ponix_clickhouse, name) is not None, name


def test_errors_share_one_root_with_stable_codes() -> None:
    errors = [
        ponix_clickhouse.ClickHouseUnavailableError,
        ponix_clickhouse.ClickHouseAuthError,
        ponix_clickhouse.QueryError,
        ponix_clickhouse.InsertError,
        ponix_clickhouse.SchemaError,
        ponix_clickhouse.MigrationError,
        ponix_clickhouse.MigrationLockedError,
        ponix_clickhouse.InvalidIdentifierError,
    ]
    codes = [error.code for error in errors]
    assert all(issubclass(error, ponix_clickhouse.ClickHouseError) for error in errors)
    assert all(code.startswith("clickhouse.") for code in codes)
    assert len(set(codes)) == len(codes)


def test_the_yoyo_entry_point_names_our_backend() -> None:
    from yoyo.backends.base import get_backend_class

    assert get_backend_class("clickhouse") is ponix_clickhouse.ClickHouseBackend
