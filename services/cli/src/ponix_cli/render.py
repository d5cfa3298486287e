"""Pure formatting: query results as a table, TSV, CSV or JSON lines, and human-sized numbers.

TSV follows ClickHouse's ``TabSeparated`` (what ``clickhouse-client`` prints when piped): no
header, ``\\t`` ``\\n`` ``\\\\`` escaped, NULL as ``\\N``. CSV has a header row; JSON lines are one
object per row. The writers take rows as an iterable and write as they go, so a result never
has to be held whole.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from itertools import islice
from typing import Any, Final, TextIO
from uuid import UUID

from rich import box
from rich.table import Table

NULL_CELL: Final = "NULL"
_LINES_PER_WRITE: Final = 500
_TSV_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)


class OutputFormat(enum.StrEnum):
    """The formats ponix writes itself (any other name is ClickHouse's, see ``ponix query``)."""

    TABLE = "table"
    TSV = "tsv"
    CSV = "csv"
    JSONL = "jsonl"

    @classmethod
    def named(cls, name: str) -> OutputFormat | None:
        """Ours by its exact (lower-case) name, else ``None``."""
        try:
            return cls(name)
        except ValueError:
            return None


def default_format(is_tty: bool) -> OutputFormat:
    """A table for a person at a terminal, TSV for a pipe (as clickhouse-client does)."""
    return OutputFormat.TABLE if is_tty else OutputFormat.TSV


def plain(value: Any) -> str:
    """One value as text: ISO times, JSON for composites, ``NULL`` for None."""
    exact = _PLAIN_BY_TYPE.get(type(value))
    if exact is not None:
        return exact(value)
    if value is None:
        return NULL_CELL
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _datetime_text(value: datetime) -> str:
    # As ClickHouse prints DateTime: wall time in the column's zone, no offset.
    micros = value.microsecond
    spec = "seconds" if not micros else "milliseconds" if not micros % 1000 else "microseconds"
    return value.replace(tzinfo=None).isoformat(" ", spec)


def _text(value: str) -> str:
    return value


# The common cell types, looked up by exact type: a million-row result is several million cells.
_PLAIN_BY_TYPE: Final[dict[type, Callable[[Any], str]]] = {
    str: _text,
    int: int.__repr__,
    float: float.__repr__,
    datetime: _datetime_text,
}


def tsv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """ClickHouse ``TabSeparated`` lines, without the trailing newline."""
    for row in rows:
        yield "\t".join([_tsv_cell(value) for value in row])


def _tsv_cell(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is float:
        return repr(value)
    return "\\N" if value is None else plain(value).translate(_TSV_ESCAPES)


def write_tsv(out: TextIO, rows: Iterable[Sequence[Any]]) -> int:
    """``TabSeparated`` lines to ``out``; returns how many rows were written."""
    return _write_lines(out, tsv_lines(rows))


def write_csv(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """RFC 4180 CSV with a header row; NULL is an empty field. Returns the rows written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    n = 0
    for row in rows:
        writer.writerow(["" if value is None else plain(value) for value in row])
        n += 1
    return n


def write_jsonl(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """JSON lines: one object per row keyed by column name. Returns the rows written."""
    encode = json.JSONEncoder(
        default=json_default, ensure_ascii=False, separators=(",", ":")
    ).encode
    return _write_lines(out, (encode(dict(zip(columns, row, strict=True))) for row in rows))


def _write_lines(out: TextIO, lines: Iterable[str]) -> int:
    """``lines`` to ``out``, newline-terminated, a few hundred per write."""
    n = 0
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) == _LINES_PER_WRITE:
            out.write("\n".join(batch) + "\n")
            n += len(batch)
            batch.clear()
    if batch:
        out.write("\n".join(batch) + "\n")
        n += len(batch)
    return n


def json_line(value: Any) -> str:
    """``value`` as compact JSON on one line (times as ISO 8601, see :func:`json_default`)."""
    return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """:func:`write_csv` into a string."""
    out = io.StringIO()
    write_csv(out, columns, rows)
    return out.getvalue()


def first(rows: Iterable[Sequence[Any]], n: int) -> list[Sequence[Any]]:
    """At most the first ``n`` rows, taken from an iterator without reading the rest."""
    return list(islice(rows, n))


def json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot encode itself: times, decimals, UUIDs, bytes, addresses."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | UUID | IPv4Address | IPv6Address | enum.Enum):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Sequence[bool] | None = None,
    title: str | None = None,
) -> Table:
    """A rich table; ``numeric`` right-aligns those columns."""
    grid = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", show_edge=False)
    aligns = numeric or [False] * len(columns)
    for name, right in zip(columns, aligns, strict=True):
        grid.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in rows:
        grid.add_row(*(plain(value) for value in row))
    return grid


def is_numeric_type(clickhouse_type: str) -> bool:
    """Whether a ClickHouse column type holds numbers (for right alignment)."""
    inner = clickhouse_type
    for wrapper in ("Nullable(", "LowCardinality("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    return inner.startswith(("UInt", "Int", "Float", "Decimal"))


def count(n: int | None) -> str:
    """``5000`` -> ``5,000``; ``None`` -> ``-``."""
    return "-" if n is None else f"{n:,}"


def size(n: int | None) -> str:
    """Bytes in 1024 steps: ``1536`` -> ``1.5 KiB``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def duration(seconds: float | None) -> str:
    """Seconds for a person: ``3.2 s``, ``0.25 s``, ``2 min 5 s``, ``2 h 1 min``, ``3 d 4 h``."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s".replace(".0 s", " s")
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, secs = divmod(whole, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours} h {rest // 60} min" if rest // 60 else f"{hours} h"
    days, rest = divmod(whole, 86400)
    return f"{days} d {rest // 3600} h" if rest // 3600 else f"{days} d"


def rate(n: int, seconds: float) -> str:
    """``5000`` in ``0.8`` s -> ``6,250/s``."""
    if seconds <= 0:
        return "-"
    return f"{round(n / seconds):,}/s"


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks the cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"
