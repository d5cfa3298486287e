"""Start-up failures, with stand-in binaries: shell scripts that fail the way servers do."""

import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ponix_devstack import (
    ClickHouseServer,
    NatsServer,
    PortInUseError,
    ServerNotReadyError,
    ServerNotStartedError,
    ServerStartFailedError,
)
from ponix_devstack.process import ServerProcess

CLICKHOUSE_18_16_TAIL = (
    "2026.11.23 09:03:00.363662 [ 1 ] {} <Error> Application: "
    "Net Exception: Address already in use: 127.0.0.1:18123\n"
    "0. /lib/x86_64-linux-gnu/libclickhouse.so.18.16(StackTrace::StackTrace()+0x16) [0x7f]\n"
    "1. /lib/x86_64-linux-gnu/libc.so.6(+0x1098ec) [0x7ffb835278ec]\n"
)


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_server_that_exits_at_start_fails_with_its_exit_code_and_log_tail(
    tmp_path: Path,
) -> None:
    fake = _script(
        tmp_path / "bin" / "nats-server",
        'echo "[1] [INF] Starting nats-server"\n'
        'echo "[1] [FTL] listen tcp 127.0.0.1:1: bind: permission denied" >&2\n'
        "exit 3",
    )
    server = NatsServer(tmp_path / "nats", binary=fake)

    with pytest.raises(ServerStartFailedError) as excinfo:
        server.start()

    err = excinfo.value
    assert err.code == "devstack.start_failed"
    assert err.exit_code == 3
    assert "Starting nats-server" in err.log_tail
    assert "\n" not in str(err)
    assert str(err).endswith("[1] [FTL] listen tcp 127.0.0.1:1: bind: permission denied")
    assert any("log tail" in note for note in err.__notes__)
    assert err.argv[0] == str(fake)


def test_a_server_that_never_gets_ready_is_killed_at_the_deadline(tmp_path: Path) -> None:
    fake = _script(tmp_path / "bin" / "nats-server", "echo waiting forever\nexec sleep 60")
    server = NatsServer(tmp_path / "nats", binary=fake, ready_timeout=0.3)
    began = time.monotonic()

    with pytest.raises(ServerNotReadyError) as excinfo:
        server.start()

    assert time.monotonic() - began < 5
    assert isinstance(excinfo.value, TimeoutError)
    assert excinfo.value.code == "devstack.not_ready"
    assert "waiting forever" in excinfo.value.log_tail
    assert "/healthz" in excinfo.value.last_error
    assert not server.is_running


def test_lost_port_races_are_retried_on_new_ports_then_reported(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    fake = _script(
        tmp_path / "bin" / "nats-server",
        f'echo x >> "{attempts}"\n'
        'echo "[FTL] listen tcp: bind: address already in use" >&2\n'
        "exit 1",
    )
    server = NatsServer(tmp_path / "nats", binary=fake)

    with pytest.raises(ServerStartFailedError):
        server.start()

    assert len(attempts.read_text().splitlines()) == 3
    with pytest.raises(ServerNotStartedError):
        _ = server.port


def test_a_fixed_port_in_use_fails_before_spawning(tmp_path: Path) -> None:
    fake = _script(tmp_path / "bin" / "nats-server", "exit 1")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = NatsServer(tmp_path / "nats", port=port, binary=fake)

        with pytest.raises(PortInUseError) as excinfo:
            server.start()

    assert excinfo.value.port == port
    assert not server.log_path.exists()


def test_clickhouse_gets_its_config_file_and_the_server_subcommand(tmp_path: Path) -> None:
    fake = _script(tmp_path / "bin" / "clickhouse", 'echo "argv: $*" >&2\nexit 70')
    server = ClickHouseServer(tmp_path / "ch", binary=fake)

    with pytest.raises(ServerStartFailedError) as excinfo:
        server.start()

    assert f"argv: server --config-file={server.config_path}" in excinfo.value.log_tail
    assert ET.parse(server.config_path).getroot().tag == "yandex"
    assert ET.parse(server.users_path).getroot().findtext("users/default/profile") == "default"


def test_clickhouse_start_failure_names_the_error_line_not_a_stack_frame(tmp_path: Path) -> None:
    err = ServerStartFailedError("clickhouse-server", 70, CLICKHOUSE_18_16_TAIL)

    assert str(err).endswith("Net Exception: Address already in use: 127.0.0.1:18123")


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    stubborn = _script(tmp_path / "stubborn", "trap '' TERM\necho ignoring\nexec sleep 60")
    log = tmp_path / "stubborn.log"
    process = ServerProcess("stubborn", log)
    process.spawn([str(stubborn)], cwd=tmp_path)
    deadline = time.monotonic() + 5
    while "ignoring" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.01)  # the trap must be set before SIGTERM is sent
    began = time.monotonic()

    code = process.terminate(timeout=0.3)

    assert code == -9
    assert time.monotonic() - began < 5
    assert not process.running


def test_stop_and_kill_before_start_do_nothing(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")

    server.stop()
    server.kill()

    assert not server.is_running
