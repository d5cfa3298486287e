"""The ClickHouse lib's errors: one root, one subclass per way talking to ClickHouse fails.

``code`` is stable (it names the failure in logs, metrics and nak reasons), ``str()`` is one line
and never holds a password. Server errors keep the server's numeric code in ``server_code``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
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


class InsertError(ClickHouseError):
    """An INSERT failed; every row it held failed with it.

    ``transient`` says whether the same rows may succeed later (nak them with ``retry_after``)
    or never will (dead-letter them). ``reason`` is a short stable word (``network``,
    ``too_many_parts``, ``bad_row``, ...), see :data:`INSERT_FAILURES`.
    """

    code = "clickhouse.insert_failed"

    def __init__(
        self,
        reason: str,
        detail: str,
        *,
        transient: bool,
        retry_after: float = 1.0,
        server_code: int | None = None,
    ) -> None:
        kind = "transient" if transient else "permanent"
        super().__init__(f"{reason} ({kind}): {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after
        self.server_code = server_code

    def with_retry_after(self, retry_after: float) -> InsertError:
        """A copy that asks the caller to retry after ``retry_after`` seconds."""
        return InsertError(
            self.reason,
            self.detail,
            transient=self.transient,
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
# Classifying a failed INSERT.
#
# server code -> (reason, transient). Transient means "the rows are fine, the server is not
# (yet)": nak them with a delay and pause fetching. Everything the server reports that is not
# listed is permanent (bad data or a query that can never work).
# --------------------------------------------------------------------------------------------

INSERT_FAILURES: Final[Mapping[int, tuple[str, bool]]] = {
    # The server is slow, busy or going away.
    159: ("timeout", True),  # TIMEOUT_EXCEEDED
    209: ("timeout", True),  # SOCKET_TIMEOUT
    210: ("network", True),  # NETWORK_ERROR
    202: ("too_many_queries", True),  # TOO_MANY_SIMULTANEOUS_QUERIES
    394: ("cancelled", True),  # QUERY_WAS_CANCELLED (server shutting down)
    # The storage pushes back.
    252: ("too_many_parts", True),  # TOO_MANY_PARTS: merges are behind
    241: ("memory_limit", True),  # MEMORY_LIMIT_EXCEEDED
    173: ("memory_limit", True),  # CANNOT_ALLOCATE_MEMORY
    243: ("disk_full", True),  # NOT_ENOUGH_SPACE
    201: ("quota", True),  # QUOTA_EXPIRED: the quota interval resets
    # Permissions: an operator fixes them; the rows are fine, so keep them in the stream.
    164: ("readonly", True),  # READONLY
    242: ("readonly", True),  # TABLE_IS_READ_ONLY (a replica lost Keeper)
    291: ("access_denied", True),  # DATABASE_ACCESS_DENIED
    497: ("access_denied", True),  # ACCESS_DENIED (modern RBAC)
    192: ("auth_failed", True),  # UNKNOWN_USER
    193: ("auth_failed", True),  # WRONG_PASSWORD (18.16)
    194: ("auth_failed", True),  # REQUIRED_PASSWORD
    516: ("auth_failed", True),  # AUTHENTICATION_FAILED (modern)
    # The schema is not there (yet): migrations pending, or the table was dropped.
    60: ("unknown_table", True),  # UNKNOWN_TABLE
    81: ("unknown_database", True),  # UNKNOWN_DATABASE
    # Replication and Keeper trouble.
    225: ("keeper", True),  # NO_ZOOKEEPER
    244: ("keeper", True),  # UNEXPECTED_ZOOKEEPER_ERROR
    999: ("keeper", True),  # KEEPER_EXCEPTION
    285: ("replicas", True),  # TOO_FEW_LIVE_REPLICAS
    286: ("replicas", True),  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319: ("unknown_insert_status", True),  # UNKNOWN_STATUS_OF_INSERT
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
# Raised by clickhouse-driver while serialising a row it cannot encode: the data is at fault.
_BAD_ROW_EXCEPTIONS: Final = (
    AttributeError,  # "'str' object has no attribute 'tzinfo'": a value of the wrong type
    IndexError,
    TypeError,
    ValueError,  # UnicodeError too
    OverflowError,
    struct.error,
    driver_errors.TypeMismatchError,
    driver_errors.TooLargeStringSize,
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
    """Classify whatever an INSERT raised (see :data:`INSERT_FAILURES`)."""
    if isinstance(exc, InsertError):
        return exc
    if isinstance(exc, driver_errors.ServerException):
        code = int(exc.code) if exc.code is not None else None
        reason, transient = INSERT_FAILURES.get(code or -1, (f"server_error_{code}", False))
        return InsertError(
            reason,
            first_line(exc.message or ""),
            transient=transient,
            retry_after=retry_after,
            server_code=code,
        )
    if isinstance(exc, driver_errors.SocketTimeoutError | TimeoutError):
        return InsertError("timeout", _describe(exc), transient=True, retry_after=retry_after)
    if isinstance(exc, _NETWORK_EXCEPTIONS):
        return InsertError("network", _describe(exc), transient=True, retry_after=retry_after)
    if isinstance(exc, _BAD_ROW_EXCEPTIONS):
        return InsertError("bad_row", _describe(exc), transient=False, retry_after=retry_after)
    # Unknown failures keep the rows: max_deliver bounds how often they come back.
    return InsertError("unexpected", _describe(exc), transient=True, retry_after=retry_after)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, driver_errors.Error):
        text = first_line(exc.message or "") if exc.message else type(exc).__name__
    else:
        text = str(exc).strip() or type(exc).__name__
    return first_line(f"{type(exc).__name__}: {text}")
