import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ponix_devstack import (
    ClickHouseServer,
    ClickHouseUser,
    NatsServer,
    NatsTls,
    ServerNotStartedError,
)
from ponix_devstack.clickhouse_config import ClickHouseLayout, render_server_config, render_users
from ponix_devstack.nats import NatsConfig


def _nats_config(**options: object) -> str:
    base: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 4333,
        "monitor_host": "127.0.0.1",
        "monitor_port": 8333,
        "store_dir": "/data/my store",
    }
    return NatsConfig(**{**base, **options}).render()  # type: ignore[arg-type]


def test_nats_config_fsyncs_every_write_and_allows_8mb_payloads() -> None:
    text = _nats_config()

    assert 'listen: "127.0.0.1:4333"' in text
    assert 'http: "127.0.0.1:8333"' in text
    assert 'store_dir: "/data/my store"' in text
    assert "sync_interval: always" in text
    assert "max_payload: 8388608" in text
    assert "authorization" not in text


def test_nats_config_without_jetstream_has_no_store() -> None:
    assert "jetstream" not in _nats_config(store_dir=None)


def test_nats_config_carries_user_token_and_tls() -> None:
    tls = NatsTls(Path("/c/cert.pem"), Path("/c/key.pem"), Path("/c/ca.pem"), verify_clients=True)

    with_user = _nats_config(user="app", password="s3cret", tls=tls)
    with_token = _nats_config(token="t0ken")

    assert 'authorization { user: "app", password: "s3cret" }' in with_user
    assert 'cert_file: "/c/cert.pem"' in with_user
    assert 'ca_file: "/c/ca.pem"' in with_user
    assert "verify: true" in with_user
    assert 'authorization { token: "t0ken" }' in with_token


@pytest.mark.parametrize(
    "options",
    [
        {"user": "app"},
        {"user": "app", "password": "p", "token": "t"},
        {"user": "app", "password": "p@ss"},
        {"token": "a b"},
    ],
)
def test_nats_server_rejects_credentials_it_cannot_put_in_its_url(
    tmp_path: Path, options: dict[str, str]
) -> None:
    with pytest.raises(ValueError, match=r"."):
        NatsServer(tmp_path, **options)  # type: ignore[arg-type]


def test_addresses_are_unknown_before_the_first_start(tmp_path: Path) -> None:
    with pytest.raises(ServerNotStartedError) as excinfo:
        _ = NatsServer(tmp_path).url
    with pytest.raises(ServerNotStartedError):
        _ = ClickHouseServer(tmp_path).url

    assert str(excinfo.value) == "devstack.not_started: NatsServer.port is known only after start()"


def test_clickhouse_config_is_a_yandex_document_with_our_ports_and_paths(tmp_path: Path) -> None:
    layout = ClickHouseLayout(tmp_path)

    root = ET.fromstring(
        render_server_config(layout, tcp_port=19000, http_port=18123, listen_host="127.0.0.1")
    )

    assert root.tag == "yandex"
    assert root.findtext("tcp_port") == "19000"
    assert root.findtext("http_port") == "18123"
    assert root.findtext("listen_host") == "127.0.0.1"
    assert root.findtext("path") == f"{tmp_path}/data/"
    assert root.findtext("tmp_path") == f"{tmp_path}/tmp/"
    assert root.findtext("users_config") == "users.xml"
    assert root.findtext("logger/level") == "warning"
    assert root.findtext("logger/console") == "0"
    assert root.findtext("timezone") == "UTC"


def test_clickhouse_users_map_readonly_to_the_readonly_profile() -> None:
    users = [ClickHouseUser("default"), ClickHouseUser("writer", "<p&ss>", readonly=True)]

    root = ET.fromstring(render_users(users))

    assert root.tag == "yandex"
    assert root.findtext("profiles/readonly/readonly") == "1"
    assert root.find("profiles/default") is not None
    assert root.findtext("users/default/password") in ("", None)
    assert root.findtext("users/default/profile") == "default"
    assert root.findtext("users/writer/password") == "<p&ss>"
    assert root.findtext("users/writer/profile") == "readonly"
    assert root.findtext("users/writer/networks/ip") == "::/0"
    assert root.find("quotas/default") is not None


@pytest.mark.parametrize("users", [[], [ClickHouseUser("a"), ClickHouseUser("a")]])
def test_users_file_needs_unique_users(users: list[ClickHouseUser]) -> None:
    with pytest.raises(ValueError, match="unique"):
        render_users(users)


def test_clickhouse_user_names_are_identifiers() -> None:
    with pytest.raises(ValueError, match="user name"):
        ClickHouseUser("bad-name")
