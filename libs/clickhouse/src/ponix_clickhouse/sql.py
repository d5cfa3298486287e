"""Identifiers in SQL text: only validated names are ever formatted into a query.

Values always travel as parameters (or as native INSERT data); names cannot, so every database,
table and column name passes through :func:`quote_identifier` first.
"""

from __future__ import annotations

import re
from typing import Final

from ponix_clickhouse.errors import InvalidIdentifierError

_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_IDENTIFIER_LENGTH: Final = 128


def check_identifier(name: str) -> str:
    """Return ``name`` when it is a plain identifier (``[A-Za-z_][A-Za-z0-9_]*``), else raise."""
    if (
        not isinstance(name, str)
        or len(name) > MAX_IDENTIFIER_LENGTH
        or not _IDENTIFIER.fullmatch(name)
    ):
        msg = f"{name!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 128 chars)"
        raise InvalidIdentifierError(msg)
    return name


def quote_identifier(name: str) -> str:
    """``name`` validated and back-quoted, ready to format into SQL."""
    return f"`{check_identifier(name)}`"


def qualified_name(database: str, table: str) -> str:
    """```database`.`table``` with both parts validated."""
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def column_list(columns: tuple[str, ...] | list[str]) -> str:
    """``(`a`, `b`, ...)`` with every name validated."""
    if not columns:
        raise InvalidIdentifierError("an empty column list")
    return "(" + ", ".join(quote_identifier(c) for c in columns) + ")"
