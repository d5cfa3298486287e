"""The servers the suite runs on: JetStream and ClickHouse answer, restart on their stores,
fail loudly, and do not outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import ServerException

from ponix_devstack import (
    ClickHouseServer,
    ClickHouseUser,
    LocalStack,
    NatsServer,
    NatsTls,
    ServerStartFailedError,
)

pytestmark = pytest.mark.integration

READONLY = 164  # ClickHouse error code: "Cannot insert into table in readonly mode"


async def _publish(url: str, stream: str, payload: bytes) -> int:
    """Create ``stream`` on ``<stream>.>`` plus a durable pull consumer; publish; return seq."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        await js.pull_subscribe(f"{stream}.>", durable=f"{stream}-reader", stream=stream)
        ack = await js.publish(f"{stream}.one", payload, headers={"Nats-Msg-Id": stream})
        return ack.seq
    finally:
        await nc.close()


async def _fetch_one(url: str, stream: str) -> bytes:
    """Fetch one message through the durable consumer made by :func:`_publish`, and ack it."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(f"{stream}.>", durable=f"{stream}-reader", stream=stream)
        [msg] = await sub.fetch(1, timeout=5)
        await msg.ack_sync()
        return msg.data
    finally:
        await nc.close()


async def test_jetstream_publish_then_pull_fetch(nats_url: str, unique: str) -> None:
    seq = await _publish(nats_url, unique, b"hello")

    assert seq == 1
    assert await _fetch_one(nats_url, unique) == b"hello"


def test_clickhouse_insert_and_select_over_native_protocol(
    clickhouse_url: str, clickhouse_db: str
) -> None:
    client = Client.from_url(clickhouse_url)
    try:
        client.execute(
            f"CREATE TABLE {clickhouse_db}.events (id UInt32, body String) "
            "ENGINE = MergeTree ORDER BY id"
        )
        client.execute(
            f"INSERT INTO {clickhouse_db}.events (id, body) VALUES", [(2, "b"), (1, "a")]
        )
        rows = client.execute(f"SELECT id, body FROM {clickhouse_db}.events ORDER BY id")
    finally:
        client.disconnect()

    assert rows == [(1, "a"), (2, "b")]


async def test_nats_restart_on_same_store_keeps_acked_message(
    nats_server: NatsServer, unique: str
) -> None:
    url = nats_server.url
    await _publish(url, unique, b"survives a restart")

    nats_server.stop()
    assert not nats_server.is_running
    nats_server.start()

    assert nats_server.url == url
    assert await _fetch_one(url, unique) == b"survives a restart"


async def test_nats_kill_keeps_acked_message(
    nats_server_factory: Callable[..., NatsServer], unique: str
) -> None:
    server = nats_server_factory()
    await _publish(server.url, unique, b"survives SIGKILL")

    server.kill()
    server.start()

    assert await _fetch_one(server.url, unique) == b"survives SIGKILL"


def test_nats_config_syncs_every_write(nats_server: NatsServer) -> None:
    config = nats_server.config_path.read_text()

    assert "sync_interval: always" in config
    assert f'store_dir: "{nats_server.data_dir}"' in config


def test_clickhouse_restart_keeps_rows(
    clickhouse_server: ClickHouseServer, clickhouse_db: str
) -> None:
    clickhouse_server.query(f"CREATE TABLE {clickhouse_db}.kept (x UInt8) ENGINE = TinyLog")
    clickhouse_server.query(f"INSERT INTO {clickhouse_db}.kept VALUES (7)")

    clickhouse_server.restart()

    assert clickhouse_server.query(f"SELECT x FROM {clickhouse_db}.kept").strip() == "7"


def test_readonly_profile_refuses_inserts_until_switched_back(
    clickhouse_server: ClickHouseServer, clickhouse_db: str
) -> None:
    # Profiles bind at login: only connections opened after the switch see it (18.16 keeps an
    # open native connection on its old profile), so each step uses a fresh client.
    clickhouse_server.query(f"CREATE TABLE {clickhouse_db}.w (x UInt8) ENGINE = TinyLog")
    insert = f"INSERT INTO {clickhouse_db}.w (x) VALUES"

    clickhouse_server.set_readonly()
    refused = Client.from_url(clickhouse_server.url)
    with pytest.raises(ServerException) as excinfo:
        refused.execute(insert, [(1,)])
    refused.disconnect()

    clickhouse_server.set_readonly(readonly=False)
    accepted = Client.from_url(clickhouse_server.url)
    accepted.execute(insert, [(2,)])
    accepted.disconnect()

    assert excinfo.value.code == READONLY
    assert clickhouse_server.query(f"SELECT x FROM {clickhouse_db}.w").strip() == "2"


def test_password_user_logs_in_through_its_url(
    clickhouse_server_factory: Callable[..., ClickHouseServer],
) -> None:
    server = clickhouse_server_factory(users=[ClickHouseUser("ponix", "p@ss:word/1")])
    wrong = server.url.replace("word%2F1", "word%2F2")

    client = Client.from_url(server.url)
    try:
        [(version,)] = client.execute("SELECT version()")
    finally:
        client.disconnect()
    refused = Client.from_url(wrong)
    with pytest.raises(ServerException):
        refused.execute("SELECT 1")
    refused.disconnect()

    assert server.url.startswith("clickhouse://ponix:p%40ss%3Aword%2F1@127.0.0.1:")
    assert tuple(int(part) for part in version.split(".")) == server.version


async def test_local_stack_starts_both_and_exports_their_urls(tmp_path: Path) -> None:
    with LocalStack(tmp_path / "stack") as stack:
        env = stack.env()
        nc = await nats.connect(env["NATS_URL"])
        await nc.close()
        client = Client.from_url(env["CLICKHOUSE_URL"])
        assert client.execute("SELECT 1") == [(1,)]
        client.disconnect()

    assert not stack.nats.is_running
    assert not stack.clickhouse.is_running


def test_nats_start_failure_carries_the_log_tail(
    nats_server_factory: Callable[..., NatsServer], tmp_path: Path
) -> None:
    missing = NatsTls(cert_file=tmp_path / "absent.pem", key_file=tmp_path / "absent.key")
    server = nats_server_factory(start=False, tls=missing)

    with pytest.raises(ServerStartFailedError) as excinfo:
        server.start()

    assert "absent.pem" in excinfo.value.log_tail
    assert "\n" not in str(excinfo.value)
    assert not server.is_running


_CHILD = """
import sys
from pathlib import Path
from ponix_devstack import NatsServer
server = NatsServer(Path(sys.argv[1])).start()
print(server.pid, flush=True)
sys.stdin.read()
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # a zombie nobody reaps (PID 1 in a container) has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_server_dies_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "orphan")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as parent:
        assert parent.stdout is not None
        server_pid = int(parent.stdout.readline())
        assert not _gone(server_pid)

        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()

    deadline = time.monotonic() + 10
    while not _gone(server_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(server_pid)
