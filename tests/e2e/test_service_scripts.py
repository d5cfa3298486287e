"""The service console scripts (``ponix-ingester``, ``ponix-producer``, ``ponix-all-in-one``)
treat a user's mistake and an early stop as the ``ponix`` CLI does: one ``error: <code>: ...``
line and exit 1, never a traceback; a SIGTERM or Ctrl-C still in start-up is a clean stop.

No server is needed: NATS and ClickHouse URLs point at a closed loopback port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ponix_devstack import free_port
from tests.e2e.conftest import clean_environment, one_line_error
from tests.support.pipeline import (
    SERVICE_MODULES,
    Pipeline,
    ServiceLauncher,
    ServiceName,
)

pytestmark = pytest.mark.e2e

WAITING = "waiting for dependency"
STOPPED_IN_START_UP = "shutdown requested during start-up"


@pytest.fixture
def dead_url_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    return free_port()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port this test listens on, as another service would."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


# Every service console script, and the ponix verb that runs them, take one path to that line.
COMMANDS = {
    **{service: ("-m", module) for service, module in SERVICE_MODULES.items()},
    "ponix produce": ("-m", "ponix_cli", "produce"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_taken_http_port_is_one_error_line_and_exit_1(
    command: str, taken_port: int, dead_url_port: int, tmp_path: Path
) -> None:
    dead = f"127.0.0.1:{dead_url_port}"
    done = subprocess.run(
        [sys.executable, *COMMANDS[command]],
        cwd=tmp_path,
        env=clean_environment(
            HTTP_HOST="127.0.0.1",
            HTTP_PORT=str(taken_port),
            NATS_URL=f"nats://{dead}",
            CLICKHOUSE_URL=f"clickhouse://{dead}",
            # Should the port ever be bound anyway, the service gives up on its servers fast.
            INGESTER_STARTUP_DEADLINE="1",
            PRODUCER_STARTUP_DEADLINE="1",
        ),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    line = one_line_error(done)
    assert line.startswith(
        f"error: telemetry.port_in_use: cannot serve /metrics and health on 127.0.0.1:{taken_port}"
    ), line
    assert "set HTTP_PORT to a free port" in line


@pytest.mark.parametrize(
    ("service", "sig"),
    [("ingester", signal.SIGTERM), ("producer", signal.SIGINT)],
    ids=["ingester-SIGTERM", "producer-SIGINT"],
)
async def test_a_signal_while_waiting_for_servers_stops_cleanly_with_one_line(
    service: ServiceName,
    sig: signal.Signals,
    dead_url_port: int,
    unique: str,
    tmp_path: Path,
) -> None:
    dead = f"127.0.0.1:{dead_url_port}"
    pipeline = Pipeline.isolated(
        nats_url=f"nats://{dead}",
        clickhouse_url=f"clickhouse://{dead}",
        unique=unique,
        # Long enough that only the signal can end the wait.
        INGESTER_STARTUP_DEADLINE=120,
        PRODUCER_STARTUP_DEADLINE=120,
    )
    async with ServiceLauncher(tmp_path) as launch:
        child = await launch.start(pipeline, service=service, ready=False)
        await child.wait_for_log(WAITING, within=30)
        os.kill(child.pid, sig)
        ended = await child.wait(within=10)

    assert ended.code == 0, child.tail()
    stops = child.events(STOPPED_IN_START_UP)
    assert len(stops) == 1, child.tail()
    assert stops[0].fields["signal_name"] == sig.name
    assert stops[0].level == "info"
    assert child.events("service stopped", reason="signal", exit_code=0), child.tail()
    assert not any("Traceback" in line.text for line in child.lines), child.tail()
