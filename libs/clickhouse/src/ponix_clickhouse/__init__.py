"""ClickHouse for Ponix: the ``BatchWriter`` sink, migrations and the yoyo ``clickhouse`` backend.

Everything public is re-exported here; import nothing else from outside this lib.
"""

from ponix_clickhouse.client import (
    QueryResult,
    make_client,
    parse_version,
    ping,
    run_query,
    server_version,
)
from ponix_clickhouse.errors import (
    INSERT_FAILURES,
    ClickHouseAuthError,
    ClickHouseError,
    ClickHouseUnavailableError,
    Fault,
    InsertError,
    InvalidIdentifierError,
    MigrationError,
    MigrationLockedError,
    QueryError,
    SchemaError,
    insert_error,
)
from ponix_clickhouse.insert import Rejected, dedup_token, insert_settings
from ponix_clickhouse.layout import (
    DATETIME64_SINCE,
    DEDUP_TOKEN_SINCE,
    ENVELOPE_COLUMNS,
    JSON_TYPE_SINCE,
    TableLayout,
    envelope_layout,
    is_rs_table,
    read_table_layout,
)
from ponix_clickhouse.migrate import (
    MigrationReport,
    migrate,
    migrations_dir,
)
from ponix_clickhouse.rows import (
    DECODE_FAILED,
    INVALID,
    SUBJECT_MISMATCH,
    TIMESTAMP_OUT_OF_RANGE,
    TOO_LARGE,
    Delivery,
    Poison,
    Row,
    RowBuilder,
    TimeRange,
    delivery_key,
    raw_struct_json,
    struct_json,
)
from ponix_clickhouse.rs_upgrade import (
    RsUpgradeReport,
    rs_envelope_id,
    upgrade_rs_table,
)
from ponix_clickhouse.sql import check_identifier, qualified_name, quote_identifier
from ponix_clickhouse.writer import BatchWriter
from ponix_clickhouse.yoyo_backend import ClickHouseBackend, ClickHouseConnection

__all__ = (
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
