"""Settings and a query helper for the ClickHouse tests, on the session's shared server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from clickhouse_driver import Client

from ponix_config import ClickHouseSettings

MakeSettings = Callable[..., ClickHouseSettings]
Query = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture
def make_settings(clickhouse_url: str, clickhouse_db: str) -> MakeSettings:
    """``make(**overrides)``: settings for the test's own database on the shared server."""

    def make(**overrides: Any) -> ClickHouseSettings:
        values: dict[str, Any] = {"url": clickhouse_url, "database": clickhouse_db}
        values.update(overrides)
        return ClickHouseSettings(**values)

    return make


@pytest.fixture
def query(clickhouse_url: str) -> Iterator[Query]:
    """``query(sql, params=None)``: rows, on a connection of its own (reconnects after faults)."""
    client = Client.from_url(clickhouse_url)

    def run(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = client.execute(sql, params)
        return rows

    yield run
    client.disconnect()
