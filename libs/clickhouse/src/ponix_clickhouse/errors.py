"""The ClickHouse lib's errors: one root, one subclass per way talking to ClickHouse fails.

``code`` is stable (it names the failure in logs, metrics and nak reasons), ``str()`` is one line
and never holds a password. Server errors keep the server's numeric code in ``server_code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

from clickhouse_driver import errors as driver_errors


class ClickHouseError(Exception):
    """Root of every error this lib raises; ``code`` is stable, ``str()`` is one line."""

    code = "clickhouse.error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class ClickHouseUnavailableError(ClickHouseError):
    """The server did not answer: refused, reset, timed out. ``url`` carries no credentials."""

    code = "clickhouse.unreachable"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class ClickHouseAuthError(ClickHouseError):
    """The server refused the user or password."""

    code = "clickhouse.auth_failed"

    def __init__(self, url: str, user: str, reason: str) -> None:
        super().__init__(f"{url} as {user!r}: {reason}")
        self.url = url
        self.user = user
        self.reason = reason


class QueryError(ClickHouseError):
    """The server rejected a query (syntax, unknown table, ...): its code and first line."""

    code = "clickhouse.query_failed"

    def __init__(self, server_code: int | None, reason: str) -> None:
        prefix = f"Code {server_code}: " if server_code is not None else ""
        super().__init__(prefix + reason)
        self.server_code = server_code
        self.reason = reason


class Fault(StrEnum):
    """Whose fault a failed INSERT is (docs/architecture.md, "Failure classes")."""

    MESSAGE = "message"
    """A row's own content: ClickHouse rejects it alone (parse, type, value). Such rows are
    isolated from their batch and dead-lettered; the others are stored."""
    STORE = "store"
    """Everything else: unreachable, slow, read-only, too many parts, table missing, schema
    drift, codes nobody has seen yet. The batch is held and retried in place, never
    dead-lettered."""


class InsertError(ClickHouseError):
    """An INSERT failed; every row it held failed with it.

    ``fault`` says who is to blame (:class:`Fault`); ``reason`` is a short stable word
    (``network``, ``too_many_parts``, ``cannot_parse_text``, ...), see :data:`INSERT_FAILURES`.
    ``retry_after`` is how long a caller that gives the rows back (nak) should wait.
    """

    code = "clickhouse.insert_failed"

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        fault: Fault,
        retry_after: float = 1.0,
        server_code: int | None = None,
    ) -> None:
        super().__init__(f"{reason} ({fault.value}): {detail}")
        self.reason = reason
        self.detail = detail
        self.fault = fault
        self.retry_after = retry_after
        self.server_code = server_code

    @property
    def store_fault(self) -> bool:
        return self.fault is Fault.STORE

    def with_retry_after(self, retry_after: float) -> InsertError:
        """A copy that asks the caller to retry after ``retry_after`` seconds."""
        return InsertError(
            self.reason,
            self.detail,
            fault=self.fault,
            retry_after=retry_after,
            server_code=self.server_code,
        )


class SchemaError(ClickHouseError):
    """The table is missing or lacks the columns the writer was told to insert."""

    code = "clickhouse.schema_mismatch"


class MigrationError(ClickHouseError):
    """A migration failed to apply or roll back; the server's reason is in the message."""

    code = "clickhouse.migration_failed"


class MigrationLockedError(MigrationError):
    """Another migrator held the migration lock for longer than the lock timeout."""

    code = "clickhouse.migration_locked"


class InvalidIdentifierError(ClickHouseError, ValueError):
    """A database, table or column name that is not a plain identifier."""

    code = "clickhouse.invalid_identifier"


# --------------------------------------------------------------------------------------------
# Classifying a failed INSERT: the one table, kept as data (tests/unit/clickhouse/test_errors.py).
#
# server code -> (reason, fault). Only what a row alone can trigger is the message's fault; a
# code that is not listed is the store's: when in doubt, it is the store. Even a message-caused
# code is only believed once bisection found rows of the same batch that insert, or a row known
# to be good still inserts (the writer's canary): a column whose type changed rejects every row
# with the same parse errors.
# --------------------------------------------------------------------------------------------

_M, _S = Fault.MESSAGE, Fault.STORE

INSERT_FAILURES: Final[Mapping[int, tuple[str, Fault]]] = {
    # A row's own content.
    6: ("cannot_parse_text", _M),  # CANNOT_PARSE_TEXT
    26: ("cannot_parse_quoted_string", _M),  # CANNOT_PARSE_QUOTED_STRING
    27: ("cannot_parse_input", _M),  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38: ("cannot_parse_date", _M),  # CANNOT_PARSE_DATE
    41: ("cannot_parse_datetime", _M),  # CANNOT_PARSE_DATETIME
    69: ("argument_out_of_bound", _M),  # ARGUMENT_OUT_OF_BOUND
    70: ("cannot_convert_type", _M),  # CANNOT_CONVERT_TYPE
    72: ("cannot_parse_number", _M),  # CANNOT_PARSE_NUMBER
    117: ("incorrect_data", _M),  # INCORRECT_DATA (e.g. JSON the JSON type cannot take)
    131: ("too_large_string", _M),  # TOO_LARGE_STRING_SIZE
    321: ("value_out_of_range", _M),  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349: ("null_in_ordinary_column", _M),  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    395: ("throw_if", _M),  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (a check on the row)
    407: ("decimal_overflow", _M),  # DECIMAL_OVERFLOW
    469: ("violated_constraint", _M),  # VIOLATED_CONSTRAINT
    691: ("unknown_enum_element", _M),  # UNKNOWN_ELEMENT_OF_ENUM
    # The store, named for logs and metrics. Slow, busy or going away:
    159: ("timeout", _S),  # TIMEOUT_EXCEEDED
    209: ("timeout", _S),  # SOCKET_TIMEOUT
    210: ("network", _S),  # NETWORK_ERROR
    202: ("too_many_queries", _S),  # TOO_MANY_SIMULTANEOUS_QUERIES
    394: ("cancelled", _S),  # QUERY_WAS_CANCELLED (server shutting down)
    # The storage pushes back:
    252: ("too_many_parts", _S),  # TOO_MANY_PARTS: merges are behind
    241: ("memory_limit", _S),  # MEMORY_LIMIT_EXCEEDED
    173: ("memory_limit", _S),  # CANNOT_ALLOCATE_MEMORY
    243: ("disk_full", _S),  # NOT_ENOUGH_SPACE
    201: ("quota", _S),  # QUOTA_EXPIRED: the quota interval resets
    # Permissions, which an operator fixes:
    164: ("readonly", _S),  # READONLY
    242: ("readonly", _S),  # TABLE_IS_READ_ONLY (a replica lost Keeper)
    291: ("access_denied", _S),  # DATABASE_ACCESS_DENIED
    497: ("access_denied", _S),  # ACCESS_DENIED (modern RBAC)
    192: ("auth_failed", _S),  # UNKNOWN_USER
    193: ("auth_failed", _S),  # WRONG_PASSWORD (18.16)
    194: ("auth_failed", _S),  # REQUIRED_PASSWORD
    516: ("auth_failed", _S),  # AUTHENTICATION_FAILED (modern)
    # The schema is not there, or not what the rows are built for:
    60: ("unknown_table", _S),  # UNKNOWN_TABLE (detached, dropped, migrations pending)
    81: ("unknown_database", _S),  # UNKNOWN_DATABASE
    16: ("schema_drift", _S),  # NO_SUCH_COLUMN_IN_TABLE
    8: ("schema_drift", _S),  # THERE_IS_NO_COLUMN
    10: ("schema_drift", _S),  # NOT_FOUND_COLUMN_IN_BLOCK
    47: ("schema_drift", _S),  # UNKNOWN_IDENTIFIER
    53: ("schema_drift", _S),  # TYPE_MISMATCH (a column whose type changed)
    # Replication, Keeper and Distributed tables:
    225: ("keeper", _S),  # NO_ZOOKEEPER
    244: ("keeper", _S),  # UNEXPECTED_ZOOKEEPER_ERROR
    999: ("keeper", _S),  # KEEPER_EXCEPTION
    285: ("replicas", _S),  # TOO_FEW_LIVE_REPLICAS
    286: ("replicas", _S),  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319: ("unknown_insert_status", _S),  # UNKNOWN_STATUS_OF_INSERT
    279: ("replicas", _S),  # ALL_CONNECTION_TRIES_FAILED (a Distributed table's shards)
}

AUTH_FAILURE_CODES: Final = frozenset({192, 193, 194, 516})

# Raised by clickhouse-driver (or the socket under it) before or while talking to the server.
_NETWORK_EXCEPTIONS: Final = (
    driver_errors.NetworkError,
    driver_errors.UnexpectedPacketFromServerError,
    driver_errors.UnknownPacketFromServerError,
    EOFError,
    OSError,  # ConnectionError, socket.timeout/TimeoutError, BrokenPipeError, ...
)


def first_line(message: str, *, limit: int = 300) -> str:
    """The first meaningful line of a server message, without ``DB::Exception:`` or stacks."""
    for raw in message.splitlines():
        line = raw.strip()
        if line:
            break
    else:
        return "no message"
    line = line.removeprefix("DB::Exception:").strip()
    cut = line.find("Stack trace:")
    if cut >= 0:
        line = line[:cut].rstrip(" .,:") + "."
    return line if len(line) <= limit else line[: limit - 1] + "…"


def insert_error(exc: BaseException, *, retry_after: float = 1.0) -> InsertError:
    """Classify whatever an INSERT raised (see :data:`INSERT_FAILURES`).

    Only a server code the table marks as the message's is the message's fault. Everything the
    driver raises on our side (the socket, or serialising a row: after a column changed type,
    say) is the store's: the rows are built to the table's layout, so a value the driver cannot
    encode means the table moved, not the row.
    """
    if isinstance(exc, InsertError):
        return exc
    if isinstance(exc, driver_errors.ServerException):
        code = int(exc.code) if exc.code is not None else None
        reason, fault = INSERT_FAILURES.get(code or -1, (f"server_error_{code}", Fault.STORE))
        return InsertError(
            reason,
            first_line(exc.message or ""),
            fault=fault,
            retry_after=retry_after,
            server_code=code,
        )
    if isinstance(exc, driver_errors.SocketTimeoutError | TimeoutError):
        reason = "timeout"
    elif isinstance(exc, _NETWORK_EXCEPTIONS):
        reason = "network"
    else:
        reason = "client_error"
    return InsertError(reason, _describe(exc), fault=Fault.STORE, retry_after=retry_after)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, driver_errors.Error):
        text = first_line(exc.message or "") if exc.message else type(exc).__name__
    else:
        text = str(exc).strip() or type(exc).__name__
    return first_line(f"{type(exc).__name__}: {text}")
