"""The testcontainers path picks its images through the variables compose reads."""

from __future__ import annotations

import pytest

from ponix_devstack import (
    CLICKHOUSE_IMAGE,
    NATS_IMAGE,
    ClickHouseContainer,
    NatsContainer,
    clickhouse_image,
    nats_image,
)


def test_official_images_when_no_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NATS_IMAGE", raising=False)
    monkeypatch.setenv("CLICKHOUSE_IMAGE", " ")

    assert nats_image() == NATS_IMAGE
    assert clickhouse_image() == CLICKHOUSE_IMAGE
    assert NatsContainer().image == NATS_IMAGE


def test_variables_name_the_containers_images(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_IMAGE", "local/nats:2.15")
    monkeypatch.setenv("CLICKHOUSE_IMAGE", "registry.example/clickhouse:18.16")

    assert NatsContainer().image == "local/nats:2.15"
    assert ClickHouseContainer().image == "registry.example/clickhouse:18.16"
    assert NatsContainer("mine/nats:1").image == "mine/nats:1"
