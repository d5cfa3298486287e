"""Options several verbs share, declared once, so a flag means one thing on every verb.

Short flags: ``-n`` is always how many (``--count``, ``--limit``), ``-f`` is always the output
format, ``-d`` the database, ``-y`` "do not ask", ``-w`` watch, ``-p`` the process to run.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import typer

from ponix_cli.render import OutputFormat

NatsUrl = Annotated[
    str | None,
    typer.Option(
        "--nats-url",
        help="NATS server URL; overrides NATS_URL (and .ponix/env).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
ClickHouseUrl = Annotated[
    str | None,
    typer.Option(
        "--clickhouse-url",
        help="ClickHouse native URL (clickhouse://user:pass@host:9000/db); overrides "
        "CLICKHOUSE_URL (and .ponix/env).",
        show_default=False,
        rich_help_panel="Connection",
    ),
]
Json = Annotated[
    bool,
    typer.Option("--json", help="Print JSON instead of text (for scripts)."),
]


def _format_names(incomplete: str) -> list[str]:
    names = [f.value for f in OutputFormat] + list(CLICKHOUSE_FORMATS)
    return [name for name in names if name.startswith(incomplete)]


# Offered by shell completion after --format; the server accepts any of its output formats.
CLICKHOUSE_FORMATS: Final = (
    "CSVWithNames",
    "JSON",
    "JSONCompact",
    "JSONEachRow",
    "Pretty",
    "PrettyCompact",
    "TSVWithNames",
    "Vertical",
)

OutputFormatName = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help="table, tsv, csv or jsonl (written by ponix, streamed), or any ClickHouse output "
        "format (JSONEachRow, Pretty...). Default: table on a terminal, tsv when piped.",
        show_default=False,
        autocompletion=_format_names,
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        help="Only messages stored at or after this time: a duration back from now (90s, 15m, "
        "2h, 7d) or an ISO 8601 time (2026-12-01T10:00:00Z; UTC when no offset).",
        show_default=False,
    ),
]
FromSeq = Annotated[
    int | None,
    typer.Option(
        "--from-seq",
        min=1,
        help="Only messages at or after this stream sequence.",
        show_default=False,
    ),
]

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """``--since``: ``15m`` -> 15 minutes before ``now``; an ISO 8601 time as given (UTC when it
    has no offset). A value that is neither is a usage error (exit 2)."""
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (90s, 15m, 2h, 7d) nor an ISO 8601 time",
            param_hint="--since",
        ) from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
