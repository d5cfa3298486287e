"""Options several verbs share, declared once."""

from __future__ import annotations

from typing import Annotated

import typer

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
