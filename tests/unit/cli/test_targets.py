"""Which URL a verb uses: flag, environment, .env, the dev file, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from ponix_cli import envfile, targets


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PONIX_DATA_DIR", raising=False)
    return tmp_path


def _dev_file(workdir: Path) -> Path:
    path = workdir / ".ponix" / "env"
    envfile.write_env_file(
        path,
        {"NATS_URL": "nats://127.0.0.1:14222", "CLICKHOUSE_URL": "clickhouse://127.0.0.1:19000/"},
        pid=999_999,
    )
    return path


def test_the_dev_file_fills_unset_urls(workdir: Path) -> None:
    path = _dev_file(workdir)
    env: dict[str, str] = {}
    origins = targets.use_targets(environ=env, cwd=workdir)
    assert env == {
        "NATS_URL": "nats://127.0.0.1:14222",
        "CLICKHOUSE_URL": "clickhouse://127.0.0.1:19000/",
    }
    assert origins["NATS_URL"].origin == "dev"
    assert origins["NATS_URL"].path == path


def test_the_environment_and_the_seed_names_win_over_the_dev_file(workdir: Path) -> None:
    _dev_file(workdir)
    env = {"NATS_URL": "nats://mine:4222", "PONIX_CLICKHOUSE_URL": "clickhouse://seed:9000"}
    origins = targets.use_targets(environ=env, cwd=workdir)
    assert env["NATS_URL"] == "nats://mine:4222"
    assert "CLICKHOUSE_URL" not in env  # pydantic-settings reads the seed's name itself
    assert origins["NATS_URL"].origin == "environment"
    assert origins["CLICKHOUSE_URL"].origin == "environment"


def test_a_dotenv_file_wins_over_the_dev_file(workdir: Path) -> None:
    _dev_file(workdir)
    (workdir / ".env").write_text("NATS_URL=nats://from-dotenv:4222\n")
    env: dict[str, str] = {}
    origins = targets.use_targets(environ=env, cwd=workdir)
    assert "NATS_URL" not in env
    assert origins["NATS_URL"].origin == ".env"
    assert env["CLICKHOUSE_URL"] == "clickhouse://127.0.0.1:19000/"


def test_flags_win_over_everything(workdir: Path) -> None:
    _dev_file(workdir)
    env = {"NATS_URL": "nats://env:4222"}
    targets.use_targets(nats_url="nats://flag:4222", clickhouse_url="clickhouse://f:1", environ=env)
    assert env == {"NATS_URL": "nats://flag:4222", "CLICKHOUSE_URL": "clickhouse://f:1"}


def test_a_data_dir_elsewhere_is_found_through_ponix_data_dir(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = workdir / "elsewhere"
    envfile.write_env_file(elsewhere / "env", {"NATS_URL": "nats://127.0.0.1:24222"}, pid=1)
    monkeypatch.setenv("PONIX_DATA_DIR", str(elsewhere))
    env: dict[str, str] = {}
    targets.use_targets(environ=env, cwd=workdir)
    assert env["NATS_URL"] == "nats://127.0.0.1:24222"


def test_unreachable_servers_get_a_hint_about_where_the_url_came_from(workdir: Path) -> None:
    _dev_file(workdir)
    targets.use_targets(environ={"CLICKHOUSE_URL": "clickhouse://x:9000"}, cwd=workdir)
    nats_hint = targets.hint_for("nats.unreachable")
    assert nats_hint is not None
    assert "is `ponix dev` still running?" in nats_hint
    assert targets.hint_for("clickhouse.unreachable") is None  # the user set it: no guessing
    assert targets.hint_for("clickhouse.query_failed") is None
    (workdir / ".ponix" / "env").unlink()
    targets.use_targets(environ={}, cwd=workdir)
    default_hint = targets.hint_for("clickhouse.unreachable")
    assert default_hint is not None
    assert "ponix dev" in default_hint
