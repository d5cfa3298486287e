"""``ponix query --param name=value``: ClickHouse's ``{name:Type}`` placeholders, bound here.

The syntax is the server's own (``clickhouse-client --param_name=value``), but servers before
19.x (the Debian 18.16 we test on) do not parse it, so the CLI binds the values itself before
the statement is sent, the same way on every version:

* numbers (``Int*``, ``UInt*``, ``Float*``) are checked and written bare, so they also work
  where ClickHouse only takes a literal (``LIMIT {n:UInt32}``);
* ``String`` and ``FixedString(N)`` become a quoted, escaped string literal;
* ``Identifier`` becomes a back-quoted name (``db.table`` is quoted part by part);
* ``\\N`` for a ``Nullable(...)`` type is ``NULL``;
* any other type (``Date``, ``DateTime``, ``UUID``, ``Array(String)``...) becomes
  ``CAST('<value>' AS <Type>)``, which the server parses by the type's text format.

Placeholders inside string literals, quoted names and comments are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

import typer

from ponix_cli.errors import CliError

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One alternation so literals and comments are consumed whole before a placeholder can match
# inside them; only the last branch is a placeholder.
_TOKENS: Final = re.compile(
    r"""
      '(?:[^'\\]|\\.)*'
    | "(?:[^"\\]|\\.)*"
    | `(?:[^`\\]|\\.)*`
    | --[^\n]*
    | /\*.*?\*/
    | \{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:\s*(?P<type>[^{}]+?)\s*\}
    """,
    re.VERBOSE | re.DOTALL,
)
_INT: Final = re.compile(r"[+-]?\d+")
_FLOAT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:inf|nan)", re.I)
_WRAPPERS: Final = ("Nullable(", "LowCardinality(")


def parse_params(pairs: Iterable[str]) -> dict[str, str]:
    """``["org=acme", "n=10"]`` -> ``{"org": "acme", "n": "10"}``; a malformed pair is a usage
    error (exit 2)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--param")
        if name in params:
            raise typer.BadParameter(f"{name} is given twice", param_hint="--param")
        params[name] = value
    return params


def bind(sql: str, params: Mapping[str, str]) -> str:
    """``sql`` with every ``{name:Type}`` replaced by its value as a typed SQL literal."""
    used: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return match.group(0)
        if name not in params:
            raise CliError(
                "query.param_missing",
                f"{{{name}:{match.group('type')}}} has no value: pass --param {name}=VALUE",
            )
        used.add(name)
        return literal(params[name], match.group("type").strip(), name=name)

    bound = _TOKENS.sub(substitute, sql)
    unused = sorted(set(params) - used)
    if unused:
        raise CliError(
            "query.param_unused",
            f"--param {unused[0]} is not used: the statement has no {{{unused[0]}:Type}}",
        )
    return bound


def literal(value: str, kind: str, *, name: str) -> str:
    """``value`` as a SQL literal of ClickHouse type ``kind``."""
    from clickhouse_driver.util.escape import escape_param

    from ponix_clickhouse import InvalidIdentifierError, quote_identifier

    inner, nullable = _unwrap(kind)
    if nullable and value == "\\N":
        return "NULL"
    if inner.startswith(("Int", "UInt")):
        return _checked(value, _INT, kind, name)
    if inner.startswith("Float"):
        return _checked(value, _FLOAT, kind, name)
    if inner == "String" or inner.startswith("FixedString("):
        return str(escape_param(value, None))
    if inner == "Identifier":
        try:
            return ".".join(quote_identifier(part) for part in value.split("."))
        except InvalidIdentifierError:
            raise CliError(
                "query.param_invalid",
                f"--param {name}={value!r} is not a name ([A-Za-z_][A-Za-z0-9_]*, or db.table)",
            ) from None
    return f"CAST({escape_param(value, None)} AS {kind})"


def _unwrap(kind: str) -> tuple[str, bool]:
    inner, nullable = kind, False
    changed = True
    while changed:
        changed = False
        for wrapper in _WRAPPERS:
            if inner.startswith(wrapper) and inner.endswith(")"):
                nullable = nullable or wrapper == "Nullable("
                inner = inner[len(wrapper) : -1].strip()
                changed = True
    return inner, nullable


def _checked(value: str, pattern: re.Pattern[str], kind: str, name: str) -> str:
    text = value.strip()
    if not pattern.fullmatch(text):
        raise CliError("query.param_invalid", f"--param {name}={value!r} is not a {kind}")
    return text
