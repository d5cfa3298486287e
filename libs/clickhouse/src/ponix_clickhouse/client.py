"""clickhouse-driver clients built from settings, the server's version, ping and ad-hoc queries.

A ``Client`` is one native connection and is not thread-safe: give each thread its own. Every
call here blocks; the async ones run it in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from ponix_clickhouse.errors import (
    AUTH_FAILURE_CODES,
    ClickHouseAuthError,
    ClickHouseError,
    ClickHouseUnavailableError,
    QueryError,
    first_line,
)
from ponix_config import ClickHouseSettings

CLIENT_NAME = "ponix"


def make_client(
    settings: ClickHouseSettings,
    *,
    database: str | None = None,
    compression: bool = False,
    query_settings: Mapping[str, Any] | None = None,
) -> Client:
    """A (not yet connected) native-protocol client for ``settings``.

    ``database=""`` connects to the user's default database, for work that must happen before
    ``settings.database`` exists. Compression is off: on loopback and LAN links it costs more CPU
    than it saves (and needs the optional lz4 + clickhouse-cityhash packages).

    With ``settings.secure`` (``clickhouses://``, a CA file or a client certificate) the socket
    is wrapped in TLS, with the server's certificate and host name verified, before the
    client's hello, which carries the user and password, is written.
    """
    tls: dict[str, Any] = {}
    if settings.secure:
        tls["verify"] = True
        if settings.tls_ca_file is not None:
            tls["ca_certs"] = str(settings.tls_ca_file)
        if settings.tls_cert_file is not None and settings.tls_key_file is not None:
            tls["certfile"] = str(settings.tls_cert_file)
            tls["keyfile"] = str(settings.tls_key_file)
    return Client(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password.get_secret_value(),
        database=settings.database if database is None else database,
        secure=settings.secure,
        connect_timeout=settings.connect_timeout,
        send_receive_timeout=settings.send_receive_timeout,
        compression=compression,
        client_name=CLIENT_NAME,
        settings=dict(query_settings or {}),
        **tls,
    )


def client_url(client: Client) -> str:
    """``clickhouse://host:port/database`` of ``client``, never with credentials."""
    conn = client.connection
    scheme = "clickhouses" if conn.secure_socket else "clickhouse"
    host, port = conn.hosts[0]
    host = f"[{host}]" if ":" in str(host) else host
    return f"{scheme}://{host}:{port}/{conn.database or ''}"


def parse_version(text: str) -> tuple[int, ...]:
    """``"18.16.1"`` -> ``(18, 16, 1)``; ``"26.9.2.1"`` -> ``(26, 9, 2, 1)``."""
    parts: list[int] = []
    for piece in text.strip().split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ValueError(f"not a ClickHouse version: {text!r}")
    return tuple(parts)


def server_version(client: Client) -> tuple[int, ...]:
    """The server's version as integers, e.g. ``(18, 16, 1)``; blocks, raises translated."""
    try:
        rows = client.execute("SELECT version()")
    except Exception as exc:
        raise translate_error(exc, client) from exc
    return parse_version(str(rows[0][0]))


async def ping(client: Client) -> tuple[int, ...]:
    """Round-trip to the server in a worker thread; returns its version.

    Raises :class:`ClickHouseUnavailableError` or :class:`ClickHouseAuthError`. ``client`` must
    not be in use by another thread meanwhile.
    """
    return await asyncio.to_thread(server_version, client)


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of an ad-hoc query with their column names and ClickHouse types."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def run_query(
    client: Client, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
) -> QueryResult:
    """Run one statement (``%(name)s`` parameters); blocks. Errors come back translated:
    a rejected statement is a one-line :class:`QueryError` with the server's code."""
    try:
        rows, columns_with_types = client.execute(sql, params, with_column_types=True)
    except Exception as exc:
        raise translate_error(exc, client) from exc
    names = tuple(str(name) for name, _ in columns_with_types)
    types = tuple(str(kind) for _, kind in columns_with_types)
    return QueryResult(names, types, [tuple(row) for row in rows])


def translate_error(exc: BaseException, client: Client) -> ClickHouseError:
    """Map a clickhouse-driver (or socket) exception to this lib's errors."""
    if isinstance(exc, ClickHouseError):
        return exc
    url = client_url(client)
    if isinstance(exc, driver_errors.ServerException):
        code = int(exc.code) if exc.code is not None else None
        reason = first_line(exc.message or "")
        if code in AUTH_FAILURE_CODES:
            return ClickHouseAuthError(url, str(client.connection.user), reason)
        return QueryError(code, reason)
    if isinstance(
        exc,
        driver_errors.NetworkError
        | driver_errors.SocketTimeoutError
        | driver_errors.UnexpectedPacketFromServerError
        | EOFError
        | OSError,
    ):
        text = exc.message if isinstance(exc, driver_errors.Error) and exc.message else str(exc)
        return ClickHouseUnavailableError(url, first_line(text or type(exc).__name__))
    if isinstance(exc, driver_errors.Error):
        return QueryError(
            int(exc.code) if isinstance(exc.code, int) else None, first_line(str(exc))
        )
    return QueryError(None, first_line(f"{type(exc).__name__}: {exc}"))
