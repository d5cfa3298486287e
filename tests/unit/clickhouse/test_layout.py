"""What each server version gets, and how timestamps are passed to the driver."""

from __future__ import annotations

import pytest

from ponix_clickhouse import (
    ENVELOPE_COLUMNS,
    SchemaError,
    TableLayout,
    envelope_layout,
    parse_version,
)


def test_envelope_columns_are_the_row_order() -> None:
    assert ENVELOPE_COLUMNS == (
        "id",
        "organization_id",
        "end_device_id",
        "occurred_at",
        "processed_at",
        "data",
    )


def test_18_16_gets_second_timestamps_and_no_dedup_tokens() -> None:
    layout = envelope_layout((18, 16, 1))
    assert layout.type_of("occurred_at") == "DateTime('UTC')"
    assert layout.type_of("data") == "String"
    assert layout.time_scale() == 1
    assert not layout.dedup_tokens


@pytest.mark.parametrize("version", [(20, 1), (22, 2, 1), (26, 9, 2, 1)])
def test_modern_servers_get_millisecond_timestamps(version: tuple[int, ...]) -> None:
    layout = envelope_layout(version)
    assert layout.type_of("processed_at") == "DateTime64(3, 'UTC')"
    assert layout.time_scale("processed_at") == 1000
    assert layout.dedup_tokens is (version >= (22, 2))


def test_time_scale_of_a_non_time_column_is_a_schema_error() -> None:
    layout = TableLayout(("x",), ("String",), (18, 16, 1))
    with pytest.raises(SchemaError):
        layout.time_scale("x")


@pytest.mark.parametrize(
    ("text", "version"),
    [("18.16.1", (18, 16, 1)), ("26.9.2.1", (26, 9, 2, 1)), ("24.8.1.2684-lts", (24, 8, 1, 2684))],
)
def test_parse_version(text: str, version: tuple[int, ...]) -> None:
    assert parse_version(text) == version


def test_parse_version_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not a ClickHouse version"):
        parse_version("vm")
