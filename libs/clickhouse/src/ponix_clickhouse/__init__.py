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
    InsertError,
    InvalidIdentifierError,
    MigrationError,
    MigrationLockedError,
    QueryError,
    SchemaError,
    insert_error,
)
from ponix_clickhouse.layout import (
    DATETIME64_SINCE,
    DEDUP_TOKEN_SINCE,
    ENVELOPE_COLUMNS,
    JSON_TYPE_SINCE,
    TableLayout,
    envelope_layout,
    read_table_layout,
)
from ponix_clickhouse.migrate import (
    MigrationReport,
    migrate,
    migrations_dir,
)
from ponix_clickhouse.sql import check_identifier, qualified_name, quote_identifier
from ponix_clickhouse.writer import Backoff, BatchWriter, ShutdownToken, dedup_token
from ponix_clickhouse.yoyo_backend import ClickHouseBackend, ClickHouseConnection

__all__ = (
    "DATETIME64_SINCE",
    "DEDUP_TOKEN_SINCE",
    "ENVELOPE_COLUMNS",
    "INSERT_FAILURES",
    "JSON_TYPE_SINCE",
    "Backoff",
    "BatchWriter",
    "ClickHouseAuthError",
    "ClickHouseBackend",
    "ClickHouseConnection",
    "ClickHouseError",
    "ClickHouseUnavailableError",
    "InsertError",
    "InvalidIdentifierError",
    "MigrationError",
    "MigrationLockedError",
    "MigrationReport",
    "QueryError",
    "QueryResult",
    "SchemaError",
    "ShutdownToken",
    "TableLayout",
    "check_identifier",
    "dedup_token",
    "envelope_layout",
    "insert_error",
    "make_client",
    "migrate",
    "migrations_dir",
    "parse_version",
    "ping",
    "qualified_name",
    "quote_identifier",
    "read_table_layout",
    "run_query",
    "server_version",
)
