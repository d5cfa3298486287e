"""A Ponix RS configuration carries over: its variables are mapped, reported, or refused with
the fix, never dropped silently (the names and defaults are RS's config.rs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ponix_config import (
    ClickHouseSettings,
    ConfigError,
    NatsSettings,
    NoticeKind,
    PonixSettings,
    TelemetrySettings,
    environment_notices,
    load_settings,
)
from ponix_ingester import IngesterSettings
from ponix_producer import ProducerSettings

# docker/docker-compose.service.yaml of Ponix RS, plus its ClickHouse settings.
RS_ENVIRONMENT = {
    "PONIX_LOG_LEVEL": "warn",
    "PONIX_MESSAGE": "Hello from ponix-rs!",
    "PONIX_INTERVAL_SECS": "4",
    "PONIX_NATS_URL": "nats://ponix-nats:4222",
    "PONIX_NATS_STREAM": "processed_envelopes",
    "PONIX_NATS_SUBJECT": "processed_envelopes.>",
    "PONIX_NATS_BATCH_SIZE": "30",
    "PONIX_NATS_BATCH_WAIT_SECS": "5",
    "PONIX_STARTUP_TIMEOUT_SECS": "30",
    "PONIX_CLICKHOUSE_URL": "http://ponix-clickhouse:8123",
    "PONIX_CLICKHOUSE_NATIVE_URL": "ponix-clickhouse:9000",
    "PONIX_CLICKHOUSE_DATABASE": "ponix",
    "PONIX_CLICKHOUSE_USERNAME": "ponix",
    "PONIX_CLICKHOUSE_PASSWORD": "ponix",
    "PONIX_CLICKHOUSE_MIGRATIONS_DIR": "/home/ponix/migrations/clickhouse",
    "PONIX_CLICKHOUSE_GOOSE_BINARY_PATH": "goose",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    prefixes = ("NATS_", "CLICKHOUSE_", "PONIX_", "LOG_", "HTTP_", "INGESTER_", "PRODUCER_")
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def rs_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in RS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("rs_env")
def test_an_rs_environment_configures_every_service() -> None:
    nats = load_settings(NatsSettings)
    assert nats.url == "nats://ponix-nats:4222"
    assert nats.stream == "processed_envelopes"
    assert nats.subjects == ["processed_envelopes.>"]
    assert nats.batch_size == 30
    assert nats.fetch_expires == 5.0

    clickhouse = load_settings(ClickHouseSettings)
    assert (clickhouse.host, clickhouse.port, clickhouse.secure) == (
        "ponix-clickhouse",
        9000,
        False,
    )
    assert (clickhouse.user, clickhouse.database) == ("ponix", "ponix")
    assert clickhouse.password.get_secret_value() == "ponix"
    assert clickhouse.migrations_dir is None  # RS's goose directory is not ours

    assert load_settings(TelemetrySettings).log_level == "warning"
    assert load_settings(IngesterSettings).startup_deadline == 30.0
    producer = load_settings(ProducerSettings)
    assert producer.startup_deadline == 30.0
    assert producer.rate == 0.25


@pytest.mark.usefixtures("rs_env")
def test_our_own_names_win_over_the_rs_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_USER", "ingest")
    monkeypatch.setenv("NATS_SUBJECT_PREFIX", "envelopes")
    monkeypatch.setenv("CLICKHOUSE_URL", "clickhouse://ours:9001")
    assert load_settings(ClickHouseSettings).user == "ingest"
    assert load_settings(ClickHouseSettings).url == "clickhouse://ours:9001"
    assert load_settings(NatsSettings).subject_prefix == "envelopes"


@pytest.mark.parametrize(("level", "read_as"), [("warn", "warning"), ("trace", "debug")])
def test_rs_log_levels_are_accepted(
    monkeypatch: pytest.MonkeyPatch, level: str, read_as: str
) -> None:
    monkeypatch.setenv("PONIX_LOG_LEVEL", level.upper())
    assert load_settings(TelemetrySettings).log_level == read_as


def test_an_http_clickhouse_url_alone_is_refused_naming_the_native_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PONIX_CLICKHOUSE_URL", "http://ponix-clickhouse:8123")
    with pytest.raises(ConfigError) as caught:
        load_settings(ClickHouseSettings)
    assert str(caught.value) == (
        "config.invalid: PONIX_CLICKHOUSE_URL='http://ponix-clickhouse:8123': value error, "
        "not a clickhouse://host:port URL but ClickHouse's HTTP interface (port 8123); Ponix "
        "speaks the native protocol, on port 9000 by default: use clickhouse://ponix-clickhouse:9000"
    )


def test_an_https_clickhouse_url_points_at_the_tls_native_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "https://ch.example:8443")
    with pytest.raises(
        ConfigError, match=r"port 9440 by default: use clickhouses://ch.example:9440"
    ):
        load_settings(ClickHouseSettings)


def test_a_bad_rs_value_names_the_rs_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONIX_NATS_BATCH_WAIT_SECS", "soon")
    with pytest.raises(ConfigError, match=r"^config.invalid: PONIX_NATS_BATCH_WAIT_SECS='soon'"):
        load_settings(NatsSettings)


@pytest.mark.usefixtures("rs_env")
def test_start_up_reports_what_was_mapped_and_what_has_no_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PONIX_POSTGRES_HOST", "db")
    monkeypatch.setenv("PONIX_NATS_BACTH_SIZE", "30")  # a typo
    monkeypatch.setenv("PONIX_DATA_DIR", "/srv/ponix")  # ponix dev's own
    classes: list[type[PonixSettings]] = [NatsSettings, ClickHouseSettings, IngesterSettings]
    notices = {n.variable: (n.kind, n.detail) for n in environment_notices(classes)}

    assert notices["PONIX_NATS_SUBJECT"] == (NoticeKind.MAPPED, "NATS_SUBJECT_PREFIX")
    assert notices["PONIX_NATS_BATCH_WAIT_SECS"] == (NoticeKind.MAPPED, "NATS_FETCH_EXPIRES")
    assert notices["PONIX_CLICKHOUSE_USERNAME"] == (NoticeKind.MAPPED, "CLICKHOUSE_USER")
    assert notices["PONIX_CLICKHOUSE_NATIVE_URL"] == (NoticeKind.MAPPED, "CLICKHOUSE_URL")
    assert notices["PONIX_INTERVAL_SECS"] == (NoticeKind.MAPPED, "PRODUCER_RATE")
    assert notices["PONIX_STARTUP_TIMEOUT_SECS"][0] is NoticeKind.MAPPED
    for ignored in (
        "PONIX_MESSAGE",
        "PONIX_CLICKHOUSE_MIGRATIONS_DIR",
        "PONIX_CLICKHOUSE_GOOSE_BINARY_PATH",
        "PONIX_POSTGRES_HOST",
    ):
        assert notices[ignored][0] is NoticeKind.IGNORED, ignored
    assert notices["PONIX_NATS_BACTH_SIZE"][0] is NoticeKind.UNKNOWN
    # Names that are ours (twins of documented ones, or read by `ponix dev`) are not reported.
    for ours in (
        "PONIX_NATS_URL",
        "PONIX_LOG_LEVEL",
        "PONIX_CLICKHOUSE_DATABASE",
        "PONIX_DATA_DIR",
    ):
        assert ours not in notices
