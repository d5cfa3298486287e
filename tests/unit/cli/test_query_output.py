"""How ``ponix query`` writes a streamed result, and how a ClickHouse HTTP error reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ponix_cli import query
from ponix_cli.clickhouse_http import _query_error
from ponix_cli.clickhouse_read import RowStream
from ponix_cli.render import OutputFormat
from ponix_clickhouse import QueryError


class _Client:
    closed = False

    def disconnect(self) -> None:
        self.closed = True


def _stream(rows: Iterator[tuple[Any, ...]], client: _Client) -> RowStream:
    return RowStream(("n",), ("UInt64",), rows, client)  # type: ignore[arg-type]


def test_a_table_takes_the_first_rows_and_stops_the_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pulled = 0

    def endless() -> Iterator[tuple[int]]:
        nonlocal pulled
        while True:
            pulled += 1
            yield (pulled,)

    client = _Client()
    query._write(_stream(endless(), client), OutputFormat.TABLE)
    out = capsys.readouterr().out
    assert pulled == query.MAX_TABLE_ROWS + 1
    assert client.closed
    assert f" {query.MAX_TABLE_ROWS} " in out
    assert "1,000 rows; more not fetched (use -f tsv or LIMIT)" in out


def test_a_short_result_is_counted_under_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    client = _Client()
    query._write(_stream(iter([(1,), (2,)]), client), OutputFormat.TABLE)
    assert capsys.readouterr().out.rstrip().endswith("2 rows")
    assert not client.closed


def test_a_statement_without_rows_prints_nothing_when_piped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = RowStream((), (), iter([]), _Client())  # type: ignore[arg-type]
    query._write(stream, OutputFormat.TSV)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    "body",
    [
        "Code: 62, e.displayText() = DB::Exception: Syntax error: failed at position 1, "
        "e.what() = DB::Exception\n",
        "Code: 62. DB::Exception: Syntax error: failed at position 1. (SYNTAX_ERROR) "
        "(version 24.8.1.1)\n",
    ],
    ids=["18.16", "modern"],
)
def test_an_http_error_is_the_servers_code_and_first_line(body: str) -> None:
    error = _query_error(body, "JSONEachRow")
    assert isinstance(error, QueryError)
    assert error.server_code == 62
    assert str(error).startswith("clickhouse.query_failed: Code 62: Syntax error: failed at")


def test_an_unknown_format_names_ours_and_clickhouse_s() -> None:
    error = _query_error("Code: 73, e.displayText() = DB::Exception: Unknown format json", "json")
    assert "json is neither one of ponix's formats (table, tsv, csv, jsonl)" in str(error)
