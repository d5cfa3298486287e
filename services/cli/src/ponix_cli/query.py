"""``ponix query``: one SQL statement against ClickHouse, rows streamed to stdout as they arrive.

ponix's own formats (table, tsv, csv, jsonl) read the result over the native protocol block by
block and write each row as it comes, so a 1,000,000-row SELECT never sits in memory. Any other
format name is ClickHouse's own, written by the server: see :mod:`ponix_cli.clickhouse_http`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated, Final

import typer

from ponix_cli import console, render
from ponix_cli.options import ClickHouseUrl, OutputFormatName
from ponix_cli.render import OutputFormat
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from clickhouse_driver import Client

    from ponix_cli.clickhouse_read import RowStream
    from ponix_config import ClickHouseSettings

# A terminal table of more rows than this is unreadable; the rest is not fetched.
MAX_TABLE_ROWS: Final = 1000
_UNKNOWN_DATABASE: Final = 81

EPILOG = """
**Examples**

```
ponix query "SELECT count() FROM ponix.processed_envelopes FINAL"
ponix query "SELECT organization_id, count() FROM ponix.processed_envelopes_exact GROUP BY 1"
ponix query -f csv "SELECT * FROM processed_envelopes_exact LIMIT 10" > sample.csv
ponix query -f jsonl "SELECT * FROM processed_envelopes_exact" | jq -c .data
ponix query --param org=acme --param n=5 \\
    "SELECT * FROM processed_envelopes_exact WHERE organization_id = {org:String} LIMIT {n:UInt32}"
ponix query -f JSONEachRow "SELECT * FROM processed_envelopes_exact LIMIT 3"
echo "SELECT version()" | ponix query -
```

**Formats.** `table` (the default on a terminal; the first 1,000 rows), `tsv` (the default when
piped: ClickHouse's TabSeparated, no header), `csv` (with a header), `jsonl` (one JSON object
per line). These are streamed over the native protocol, so memory stays flat on any result size.
Any other name is a ClickHouse output format, case-sensitive (`JSONEachRow`, `CSVWithNames`,
`Pretty`, `Vertical`, `Parquet`...): the server writes it, over its HTTP interface, at
CLICKHOUSE_HTTP_URL (default: the host of CLICKHOUSE_URL, port 8123).

**Parameters.** `{name:Type}` in the statement takes the value of `--param name=VALUE`, as in
`clickhouse-client --param_name`. Values are bound by ponix (on every ClickHouse version, 18.16
included): numbers are checked, strings are quoted and escaped, `Identifier` is a quoted name,
any other type is `CAST('VALUE' AS Type)`.
"""


def query(
    sql: Annotated[
        str,
        typer.Argument(help="One SQL statement, or `-` to read it from stdin.", show_default=False),
    ],
    output_format: OutputFormatName = None,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="NAME=VALUE for a `{NAME:Type}` placeholder in the statement; repeatable.",
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
    clickhouse_http_url: Annotated[
        str | None,
        typer.Option(
            "--clickhouse-http-url",
            help="ClickHouse's HTTP interface, for ClickHouse's own formats; overrides "
            "CLICKHOUSE_HTTP_URL. Default: the host of CLICKHOUSE_URL, port 8123.",
            show_default=False,
            rich_help_panel="Connection",
        ),
    ] = None,
) -> None:
    """Run one SQL statement on ClickHouse and stream the rows to stdout.

    Reads and writes are both allowed. Exact counts need `FINAL` (or the
    `processed_envelopes_exact` view): rows redelivered by NATS are collapsed by
    ReplacingMergeTree at merge time, not at insert time.
    """
    from ponix_cli.params import bind, parse_params
    from ponix_config import ClickHouseSettings, load_settings

    values = parse_params(params or [])
    use_targets(clickhouse_url=clickhouse_url)
    console.quiet_logging()
    statement = _statement(sys.stdin.read() if sql == "-" else sql)
    if not statement:
        raise typer.BadParameter("the SQL statement is empty", param_hint="SQL")
    statement = bind(statement, values)
    settings = load_settings(ClickHouseSettings)
    name = output_format or render.default_format(console.stdout_is_tty()).value
    ours = OutputFormat.named(name)
    try:
        if ours is None:
            _server_formatted(settings, clickhouse_http_url, database, statement, name)
        else:
            _streamed(settings, database, statement, ours)
    except BrokenPipeError:
        # `ponix query ... | head`: the reader has all it wanted. Point stdout at /dev/null so
        # the interpreter's final flush does not fail again on the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _statement(text: str) -> str:
    """The statement without trailing semicolons (the native protocol takes exactly one)."""
    return text.strip().rstrip(";").strip()


def _streamed(
    settings: ClickHouseSettings, database: str | None, statement: str, chosen: OutputFormat
) -> None:
    client, stream = _start(settings, database, statement)
    try:
        _write(stream, chosen)
    finally:
        client.disconnect()


def _start(
    settings: ClickHouseSettings, database: str | None, statement: str
) -> tuple[Client, RowStream]:
    from ponix_cli.clickhouse_read import stream_rows
    from ponix_clickhouse import QueryError, make_client

    client = make_client(settings, database=database)
    try:
        return client, stream_rows(client, statement)
    except QueryError as exc:
        client.disconnect()
        # Before the first migration the configured database does not exist yet; plain
        # statements (SELECT version()) should still work.
        if exc.server_code != _UNKNOWN_DATABASE or database is not None:
            raise
    client = make_client(settings, database="")
    try:
        return client, stream_rows(client, statement)
    except BaseException:
        client.disconnect()
        raise


def _write(stream: RowStream, chosen: OutputFormat) -> None:
    if not stream.columns:
        for _ in stream.rows:
            pass
        if console.stdout_is_tty():
            console.say("ok")
        return
    out = sys.stdout
    if chosen is OutputFormat.TSV:
        render.write_tsv(out, stream.rows)
    elif chosen is OutputFormat.CSV:
        render.write_csv(out, stream.columns, stream.rows)
    elif chosen is OutputFormat.JSONL:
        render.write_jsonl(out, stream.columns, stream.rows)
    else:
        _write_table(stream)
    out.flush()


def _write_table(stream: RowStream) -> None:
    rows = render.first(stream.rows, MAX_TABLE_ROWS + 1)
    more = len(rows) > MAX_TABLE_ROWS
    if more:
        stream.close()
        rows = rows[:MAX_TABLE_ROWS]
    numeric = [render.is_numeric_type(kind) for kind in stream.types]
    out = console.out()
    out.print(render.table(stream.columns, rows, numeric=numeric))
    if more:
        note = f"the first {render.count(len(rows))} rows; more not fetched (use -f tsv or LIMIT)"
    else:
        note = "1 row" if len(rows) == 1 else f"{render.count(len(rows))} rows"
    out.print(note, style="dim")


def _server_formatted(
    settings: ClickHouseSettings,
    http_override: str | None,
    database: str | None,
    statement: str,
    name: str,
) -> None:
    from ponix_cli.clickhouse_http import copy_formatted, http_url
    from ponix_clickhouse import QueryError

    base = http_url(settings, http_override)
    out = sys.stdout.buffer
    sys.stdout.flush()
    try:
        copy_formatted(
            settings, base, statement, name, database=database or settings.database, out=out
        )
    except QueryError as exc:
        if exc.server_code != _UNKNOWN_DATABASE or database is not None:
            raise
        copy_formatted(settings, base, statement, name, database="", out=out)
