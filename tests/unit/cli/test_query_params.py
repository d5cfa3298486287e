"""``ponix query --param``: ClickHouse's ``{name:Type}`` placeholders bound by the CLI, so they
work on servers that do not parse them (18.16)."""

from __future__ import annotations

import pytest
import typer

from ponix_cli.errors import CliError
from ponix_cli.params import bind, parse_params


def test_pairs_split_at_the_first_equals_sign() -> None:
    assert parse_params(["org=acme", "expr=a=b", "empty="]) == {
        "org": "acme",
        "expr": "a=b",
        "empty": "",
    }


@pytest.mark.parametrize("pair", ["org", "=acme", "1x=2", "a b=1"])
def test_a_malformed_pair_is_a_usage_error(pair: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_params([pair])


def test_a_name_given_twice_is_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter, match="twice"):
        parse_params(["n=1", "n=2"])


@pytest.mark.parametrize(
    ("sql", "params", "bound"),
    [
        ("SELECT {s:String}", {"s": "it's \\ here"}, "SELECT 'it\\'s \\\\ here'"),
        ("LIMIT {n:UInt32}", {"n": "10"}, "LIMIT 10"),
        ("SELECT { n : Int8 }", {"n": "-5"}, "SELECT -5"),
        ("SELECT {x:Float64}", {"x": "1e3"}, "SELECT 1e3"),
        ("SELECT {d:Date}", {"d": "2026-12-01"}, "SELECT CAST('2026-12-01' AS Date)"),
        ("SELECT {a:Array(String)}", {"a": "['x']"}, "SELECT CAST('[\\'x\\']' AS Array(String))"),
        ("SELECT {n:Nullable(UInt8)}", {"n": "\\N"}, "SELECT NULL"),
        ("SELECT {c:LowCardinality(String)}", {"c": "x"}, "SELECT 'x'"),
        (
            "FROM {t:Identifier}",
            {"t": "ponix.processed_envelopes"},
            "FROM `ponix`.`processed_envelopes`",
        ),
    ],
)
def test_values_become_typed_literals(sql: str, params: dict[str, str], bound: str) -> None:
    assert bind(sql, params) == bound


def test_placeholders_inside_literals_and_comments_are_left_alone() -> None:
    sql = "SELECT '{n:UInt8}', `{n:UInt8}` -- {n:UInt8}\n, {n:UInt8} /* {n:UInt8} */"
    assert bind(sql, {"n": "1"}) == (
        "SELECT '{n:UInt8}', `{n:UInt8}` -- {n:UInt8}\n, 1 /* {n:UInt8} */"
    )


def test_json_in_a_string_is_not_a_placeholder() -> None:
    assert bind("""SELECT '{"a":1}'""", {}) == """SELECT '{"a":1}'"""


@pytest.mark.parametrize(
    ("sql", "params", "code"),
    [
        ("SELECT {n:UInt8}", {}, "query.param_missing"),
        ("SELECT 1", {"n": "1"}, "query.param_unused"),
        ("LIMIT {n:UInt8}", {"n": "1; DROP TABLE t"}, "query.param_invalid"),
        ("SELECT {x:Float32}", {"x": "0x10"}, "query.param_invalid"),
        ("FROM {t:Identifier}", {"t": "t; DROP"}, "query.param_invalid"),
    ],
)
def test_a_missing_unused_or_ill_typed_value_is_a_user_error(
    sql: str, params: dict[str, str], code: str
) -> None:
    with pytest.raises(CliError) as raised:
        bind(sql, params)
    assert raised.value.code == code
