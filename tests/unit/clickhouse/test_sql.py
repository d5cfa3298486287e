"""Only validated identifiers are ever formatted into SQL."""

from __future__ import annotations

import pytest

from ponix_clickhouse import InvalidIdentifierError, qualified_name, quote_identifier


@pytest.mark.parametrize("name", ["ponix", "processed_envelopes", "_yoyo_migration", "T1"])
def test_plain_identifiers_are_back_quoted(name: str) -> None:
    assert quote_identifier(name) == f"`{name}`"


@pytest.mark.parametrize(
    "name", ["", "1abc", "a-b", "a b", "a`b", "x; DROP TABLE t", "db.table", "é", "a" * 129]
)
def test_anything_else_is_refused(name: str) -> None:
    with pytest.raises(InvalidIdentifierError) as refused:
        quote_identifier(name)
    assert isinstance(refused.value, ValueError)
    assert refused.value.code == "clickhouse.invalid_identifier"


def test_qualified_name_validates_both_parts() -> None:
    assert qualified_name("ponix", "t") == "`ponix`.`t`"
    with pytest.raises(InvalidIdentifierError):
        qualified_name("ponix", "t`; --")
