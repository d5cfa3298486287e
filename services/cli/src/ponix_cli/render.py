"""Pure formatting: query results as a table, TSV, CSV or JSON, and human-sized numbers.

TSV follows ClickHouse's ``TabSeparated`` (what ``clickhouse-client`` prints when piped): no
header, ``\\t`` ``\\n`` ``\\\\`` escaped, NULL as ``\\N``. CSV has a header row; JSON is an array
of one object per row.
"""

from __future__ import annotations

import base64
import csv
import enum
import io
import json
import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any, Final
from uuid import UUID

from rich import box
from rich.table import Table

NULL_CELL: Final = "NULL"
_TSV_ESCAPES: Final = str.maketrans(
    {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b", "\f": "\\f"}
)


class OutputFormat(enum.StrEnum):
    """How ``ponix query`` prints rows."""

    TABLE = "table"
    TSV = "tsv"
    CSV = "csv"
    JSON = "json"


def default_format(is_tty: bool) -> OutputFormat:
    """A table for a person at a terminal, TSV for a pipe (as clickhouse-client does)."""
    return OutputFormat.TABLE if is_tty else OutputFormat.TSV


def plain(value: Any) -> str:
    """One value as text: ISO times, JSON for composites, ``NULL`` for None."""
    if value is None:
        return NULL_CELL
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        # As ClickHouse prints DateTime: wall time in the column's zone, no offset.
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if not value.microsecond:
            return text
        fraction = f"{value.microsecond:06d}"
        return f"{text}.{fraction[:3] if fraction.endswith('000') else fraction}"
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=json_default, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def tsv_lines(rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """ClickHouse ``TabSeparated`` lines, without the trailing newline."""
    for row in rows:
        yield "\t".join(_tsv_cell(value) for value in row)


def _tsv_cell(value: Any) -> str:
    return "\\N" if value is None else plain(value).translate(_TSV_ESCAPES)


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header row; NULL is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if value is None else plain(value) for value in row])
    return out.getvalue()


def json_text(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A JSON array with one object per row, keyed by column name."""
    objects = [dict(zip(columns, row, strict=True)) for row in rows]
    return json.dumps(objects, default=json_default, ensure_ascii=False, indent=2)


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
