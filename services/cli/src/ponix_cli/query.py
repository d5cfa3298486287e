"""``ponix query``: one SQL statement against ClickHouse, printed as a table, TSV, CSV or JSON."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Final

import typer

from ponix_cli import console, render
from ponix_cli.options import ClickHouseUrl
from ponix_cli.render import OutputFormat
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_clickhouse import QueryResult
    from ponix_config import ClickHouseSettings

# A terminal table of more rows than this is unreadable; the rest is counted, not drawn.
MAX_TABLE_ROWS: Final = 1000
_UNKNOWN_DATABASE: Final = 81

EPILOG = """
**Examples**

```
ponix query "SELECT count() FROM ponix.processed_envelopes FINAL"
ponix query "SELECT organization_id, count() FROM ponix.processed_envelopes_exact GROUP BY 1"
ponix query --format csv "SELECT * FROM processed_envelopes_exact LIMIT 10" > sample.csv
echo "SELECT version()" | ponix query -
```
"""


def query(
    sql: Annotated[
        str,
        typer.Argument(help="One SQL statement, or `-` to read it from stdin.", show_default=False),
    ],
    output_format: Annotated[
        OutputFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format. Default: table on a terminal, tsv when piped (no header, "
            "like clickhouse-client).",
            show_default=False,
        ),
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="Default database for unqualified names. Default: CLICKHOUSE_DATABASE (ponix).",
            show_default=False,
        ),
    ] = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Run one SQL statement on ClickHouse and print the rows.

    Reads and writes are both allowed. Exact counts need `FINAL` (or the
    `processed_envelopes_exact` view): rows redelivered by NATS are collapsed by
    ReplacingMergeTree at merge time, not at insert time.
    """
    from ponix_clickhouse import QueryError
    from ponix_config import ClickHouseSettings, load_settings

    use_targets(clickhouse_url=clickhouse_url)
    console.quiet_logging()
    statement = _statement(sys.stdin.read() if sql == "-" else sql)
    if not statement:
        raise typer.BadParameter("the SQL statement is empty", param_hint="SQL")
    settings = load_settings(ClickHouseSettings)
    chosen = output_format or render.default_format(console.stdout_is_tty())
    try:
        result = _run(settings, database, statement)
    except QueryError as exc:
        # Before the first migration the configured database does not exist yet; plain
        # statements (SELECT version()) should still work.
        if exc.server_code != _UNKNOWN_DATABASE or database is not None:
            raise
        result = _run(settings, "", statement)
    _print(result, chosen)


def _run(settings: ClickHouseSettings, database: str | None, statement: str) -> QueryResult:
    from ponix_clickhouse import make_client, run_query

    client = make_client(settings, database=database)
    try:
        return run_query(client, statement)
    finally:
        client.disconnect()


def _statement(text: str) -> str:
    """The statement without trailing semicolons (the native protocol takes exactly one)."""
    return text.strip().rstrip(";").strip()


def _print(result: QueryResult, chosen: OutputFormat) -> None:
    if not result.columns:
        if console.stdout_is_tty():
            console.say("ok")
        return
    if chosen is OutputFormat.TSV:
        for line in render.tsv_lines(result.rows):
            console.say(line)
    elif chosen is OutputFormat.CSV:
        sys.stdout.write(render.csv_text(result.columns, result.rows))
    elif chosen is OutputFormat.JSON:
        console.say(render.json_text(result.columns, result.rows))
    else:
        shown = result.rows[:MAX_TABLE_ROWS]
        numeric = [render.is_numeric_type(kind) for kind in result.types]
        out = console.out()
        out.print(render.table(result.columns, shown, numeric=numeric))
        hidden = len(result.rows) - len(shown)
        suffix = f", {render.count(hidden)} not shown (use --format tsv)" if hidden else ""
        out.print(f"{render.count(len(result.rows))} rows{suffix}", style="dim")
