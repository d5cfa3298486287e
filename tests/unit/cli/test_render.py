"""Query output formats and the human-sized numbers every verb prints."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from ponix_cli import render
from ponix_cli.render import OutputFormat


def test_a_terminal_gets_a_table_and_a_pipe_gets_tsv() -> None:
    assert render.default_format(is_tty=True) is OutputFormat.TABLE
    assert render.default_format(is_tty=False) is OutputFormat.TSV


def test_tsv_escapes_like_clickhouse_tabseparated() -> None:
    rows = [("a\tb", "line1\nline2", "back\\slash", None, 5000)]
    assert list(render.tsv_lines(rows)) == ["a\\tb\tline1\\nline2\tback\\\\slash\t\\N\t5000"]


def test_a_single_count_prints_as_a_bare_number() -> None:
    assert list(render.tsv_lines([(5000,)])) == ["5000"]


def test_datetimes_print_as_clickhouse_does_without_an_offset() -> None:
    assert render.plain(datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC)) == "2026-11-23 10:00:05"
    with_ms = datetime(2026, 11, 23, 10, 0, 5, 123000, tzinfo=UTC)
    assert render.plain(with_ms) == "2026-11-23 10:00:05.123"
    with_us = datetime(2026, 11, 23, 10, 0, 5, 123456, tzinfo=UTC)
    assert render.plain(with_us) == "2026-11-23 10:00:05.123456"


def test_csv_has_a_header_and_quotes_json_text() -> None:
    text = render.csv_text(("id", "data"), [("e-1", '{"t":1}'), ("e-2", None)])
    assert text.splitlines() == ["id,data", 'e-1,"{""t"":1}"', "e-2,"]


def test_json_lines_are_one_object_per_row_with_typed_values() -> None:
    rows = [
        (
            UUID(int=1),
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            Decimal("1.50"),
            date(2026, 1, 2),
            b"\xff",
            [1, 2],
        )
    ]
    out = io.StringIO()
    assert render.write_jsonl(out, ("u", "t", "d", "day", "raw", "arr"), rows * 2) == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert [json.loads(line) for line in lines] == 2 * [
        {
            "u": "00000000-0000-0000-0000-000000000001",
            "t": "2026-01-02T03:04:05+00:00",
            "d": "1.50",
            "day": "2026-01-02",
            "raw": "/w==",
            "arr": [1, 2],
        }
    ]


def test_json_default_refuses_what_it_does_not_know() -> None:
    with pytest.raises(TypeError):
        render.json_default(object())


@pytest.mark.parametrize(
    ("kind", "numeric"),
    [
        ("UInt64", True),
        ("Nullable(Float64)", True),
        ("LowCardinality(String)", False),
        ("DateTime('UTC')", False),
        ("Decimal(9, 2)", True),
    ],
)
def test_numeric_columns_are_recognised_for_alignment(kind: str, numeric: bool) -> None:
    assert render.is_numeric_type(kind) is numeric


def test_table_renders_every_row_with_null_for_none() -> None:
    grid = render.table(("a", "b"), [(1, None)], numeric=[True, False])
    assert grid.row_count == 1
    assert [c.justify for c in grid.columns] == ["right", "left"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.25, "0.25 s"),
        (3.0, "3 s"),
        (3.24, "3.2 s"),
        (42, "42 s"),
        (125, "2 min 5 s"),
        (120, "2 min"),
        (7300, "2 h 1 min"),
        (90000, "1 d 1 h"),
        (-5, "0 s"),
    ],
)
def test_durations_read_like_a_person_says_them(seconds: float | None, text: str) -> None:
    assert render.duration(seconds) == text


def test_counts_sizes_and_rates() -> None:
    assert render.count(5000) == "5,000"
    assert render.count(None) == "-"
    assert render.size(512) == "512 B"
    assert render.size(1536) == "1.5 KiB"
    assert render.size(3 * 1024 * 1024) == "3.0 MiB"
    assert render.rate(5000, 0.8) == "6,250/s"
    assert render.rate(5, 0) == "-"


def test_shorten_keeps_one_line_within_the_limit() -> None:
    assert render.shorten("a\nb   c", 10) == "a b c"
    assert render.shorten("x" * 20, 5) == "xxxx…"
