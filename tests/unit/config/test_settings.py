from pathlib import Path

import pytest

import ponix_config
from ponix_config import (
    ClickHouseSettings,
    ConfigError,
    InvalidSettingError,
    NatsSettings,
    TelemetrySettings,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("NATS_", "CLICKHOUSE_", "PONIX_", "LOG_", "HTTP_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def test_defaults_match_the_documented_contract() -> None:
    nats = load_settings(NatsSettings)
    assert nats.stream == "PROCESSED_ENVELOPES"
    assert nats.dlq_stream == "PROCESSED_ENVELOPES_DLQ"
    assert nats.consumer == "clickhouse-writer"
    assert nats.subjects == ["processed_envelopes.>"]
    ch = load_settings(ClickHouseSettings)
    assert (ch.database, ch.table) == ("ponix", "processed_envelopes")


def test_bad_env_value_names_the_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_BATCH_SIZE", "lots")
    with pytest.raises(InvalidSettingError) as info:
        load_settings(NatsSettings)
    text = str(info.value)
    assert text.startswith("config.invalid: NATS_BATCH_SIZE='lots': ")
    assert "\n" not in text
    assert info.value.variable == "NATS_BATCH_SIZE"


def test_bad_url_scheme_is_rejected_with_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "http://localhost:8123")
    with pytest.raises(ConfigError, match="CLICKHOUSE_URL"):
        load_settings(ClickHouseSettings)


def test_seed_prefixed_names_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONIX_NATS_URL", "nats://seed:4222")
    assert load_settings(NatsSettings).url == "nats://seed:4222"


def test_documented_name_wins_over_seed_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PONIX_NATS_URL", "nats://seed:4222")
    monkeypatch.setenv("NATS_URL", "nats://ours:4222")
    assert load_settings(NatsSettings).url == "nats://ours:4222"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLICKHOUSE_TABLE=envelopes_from_dotenv\n")
    assert load_settings(ClickHouseSettings).table == "envelopes_from_dotenv"


def test_url_credentials_are_lifted_into_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", "clickhouse://ingest:hunter2@db:9001/events")
    monkeypatch.setenv("NATS_URL", "nats://bob:s3cret@broker:4222")
    ch = load_settings(ClickHouseSettings)
    nats = load_settings(NatsSettings)
    assert (ch.url, ch.user, ch.database, ch.port) == (
        "clickhouse://db:9001/events",
        "ingest",
        "events",
        9001,
    )
    assert ch.password.get_secret_value() == "hunter2"
    assert nats.url == "nats://broker:4222"
    assert nats.user == "bob"
    assert nats.password is not None
    assert nats.password.get_secret_value() == "s3cret"
    for shown in (
        repr(ch),
        str(ch),
        repr(nats),
        str(nats),
        ch.model_dump_json(),
        nats.model_dump_json(),
    ):
        assert "hunter2" not in shown
        assert "s3cret" not in shown


def test_a_bad_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://broker:4222")
    with pytest.raises(ConfigError) as info:
        load_settings(NatsSettings, token=["not-a-string-but-secret"])
    assert "not-a-string-but-secret" not in str(info.value)


def test_nats_token_in_url_is_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NATS_URL", "nats://t0ken@broker:4222")
    nats = load_settings(NatsSettings)
    assert nats.token is not None
    assert nats.token.get_secret_value() == "t0ken"
    assert nats.user is None


def test_batch_larger_than_in_flight_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_BATCH_MAX_ROWS", "50000")
    monkeypatch.setenv("CLICKHOUSE_MAX_IN_FLIGHT_ROWS", "1000")
    with pytest.raises(ConfigError, match="CLICKHOUSE_MAX_IN_FLIGHT_ROWS"):
        load_settings(ClickHouseSettings)


def test_migrations_dir_is_optional_and_must_be_a_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load_settings(ClickHouseSettings).migrations_dir is None
    monkeypatch.setenv("CLICKHOUSE_MIGRATIONS_DIR", "  ")
    assert load_settings(ClickHouseSettings).migrations_dir is None
    (tmp_path / "cluster").mkdir()
    monkeypatch.setenv("CLICKHOUSE_MIGRATIONS_DIR", "cluster")  # relative to the working dir
    assert load_settings(ClickHouseSettings).migrations_dir == Path("cluster")
    for value, reason in (("missing", "no such directory"), (".env", "not a directory")):
        (tmp_path / ".env").write_text("")
        monkeypatch.setenv("CLICKHOUSE_MIGRATIONS_DIR", value)
        with pytest.raises(InvalidSettingError) as info:
            load_settings(ClickHouseSettings)
        text = str(info.value)
        assert text.startswith(f"config.invalid: CLICKHOUSE_MIGRATIONS_DIR={value!r}: ")
        assert text.endswith(reason)
        assert "\n" not in text


def test_subject_for_an_organization_is_a_single_token() -> None:
    nats = load_settings(NatsSettings)
    assert nats.subject_for("acme") == "processed_envelopes.acme"
    assert nats.subject_for("a.b c>") == "processed_envelopes.a_b_c_"


def test_log_level_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load_settings(TelemetrySettings)


def test_public_api_is_pinned() -> None:
    assert ponix_config.__all__ == (
        "SEED_IGNORED",
        "ClickHouseSettings",
        "ConfigError",
        "EnvironmentNotice",
        "InvalidSettingError",
        "NatsSettings",
        "NoticeKind",
        "PonixSettings",
        "SeedVariable",
        "SplitUrl",
        "TelemetrySettings",
        "environment_notices",
        "load_settings",
        "split_credentials",
    )


def test_health_and_metrics_listen_on_loopback_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings(TelemetrySettings).http_host == "127.0.0.1"
    monkeypatch.setenv("HTTP_HOST", "0.0.0.0")
    assert load_settings(TelemetrySettings).http_host == "0.0.0.0"


def test_tls_files_or_a_tls_url_require_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    assert not NatsSettings().tls_required
    assert NatsSettings(url="tls://h:4222").tls_required
    assert NatsSettings(url="nats://h:4222", tls_ca_file=ca).tls_required
    assert NatsSettings(tls_handshake_first=True).tls_required
    assert not ClickHouseSettings().secure
    assert ClickHouseSettings(url="clickhouses://h").port == 9440
    with_ca = ClickHouseSettings(url="clickhouse://h", tls_ca_file=ca)
    assert (with_ca.secure, with_ca.port) == (True, 9440)


def test_a_websocket_url_without_tls_is_refused_when_tls_is_required(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    with pytest.raises(ConfigError, match="use wss://"):
        load_settings(NatsSettings, url="ws://h:8080", tls_ca_file=ca)


def test_a_clickhouse_client_certificate_needs_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_TLS_CERT_FILE", "/etc/ponix/client.pem")
    with pytest.raises(ConfigError, match="CLICKHOUSE_TLS_KEY_FILE go together"):
        load_settings(ClickHouseSettings)
