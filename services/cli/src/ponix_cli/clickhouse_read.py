"""Streaming reads from ClickHouse for the reading verbs (query, audit).

``ponix_clickhouse.run_query`` returns a whole result as a list, which is right for the services'
small look-ups but would hold a 1,000,000-row SELECT in memory. Here clickhouse-driver's
``execute_iter`` hands rows over block by block (``max_block_size`` rows at a time), so memory
stays flat however many rows a statement returns, and external tables (an audit's ids) travel
with the query instead of as SQL text.

Errors come back as the ClickHouse lib's own (``QueryError``, ``ClickHouseUnavailableError``,
``ClickHouseAuthError``) through its ``translate_error``; this module is the only place the CLI
reaches into ``ponix_clickhouse.client`` for it, until the lib exports a streaming query itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from clickhouse_driver import Client

# Rows per block the server sends: large enough to keep the per-block overhead small, small
# enough that a block of wide rows stays a few MiB.
BLOCK_ROWS: Final = 10_000


@dataclass(frozen=True, slots=True)
class ExternalTable:
    """A temporary table sent along with one query: ``name`` with ``columns`` (name, type)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: Sequence[Mapping[str, Any]]

    def as_driver(self) -> dict[str, Any]:
        return {"name": self.name, "structure": list(self.columns), "data": self.rows}


@dataclass(slots=True)
class RowStream:
    """A statement's columns and its rows as they arrive.

    ``columns`` is empty for a statement that returns no result set (DDL, INSERT). Iterate
    ``rows`` once; call :meth:`close` to stop early (the connection is dropped, which cancels
    the query on the server).
    """

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: Iterator[tuple[Any, ...]]
    _client: Client

    def close(self) -> None:
        self._client.disconnect()


def stream_rows(
    client: Client,
    sql: str,
    *,
    external_tables: Sequence[ExternalTable] = (),
    block_rows: int = BLOCK_ROWS,
) -> RowStream:
    """Start ``sql`` and return once its header (columns and types) has arrived; blocks."""
    from ponix_clickhouse.client import translate_error

    try:
        chunks = client.execute_iter(
            sql,
            with_column_types=True,
            external_tables=[table.as_driver() for table in external_tables] or None,
            settings={"max_block_size": block_rows},
        )
        header: list[tuple[str, str]] = next(chunks, [])
    except Exception as exc:
        raise translate_error(exc, client) from exc
    names = tuple(str(name) for name, _ in header)
    types = tuple(str(kind) for _, kind in header)
    return RowStream(names, types, _translated(chunks, client), client)


def _translated(chunks: Iterator[Any], client: Client) -> Iterator[tuple[Any, ...]]:
    from ponix_clickhouse.client import translate_error

    try:
        for row in chunks:
            yield tuple(row)
    except Exception as exc:
        raise translate_error(exc, client) from exc


def all_rows(
    client: Client, sql: str, *, external_tables: Sequence[ExternalTable] = ()
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` (streamed); blocks between rows."""
    return stream_rows(client, sql, external_tables=external_tables).rows
