"""Every service console script answers ``--help`` and ``--version`` and refuses an unknown
argument before it does anything else: no setting is loaded, no server is waited for."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from ponix_devstack import free_port
from tests.e2e.conftest import clean_environment

pytestmark = pytest.mark.e2e

SCRIPTS = ("ponix-ingester", "ponix-producer", "ponix-all-in-one")


@pytest.fixture
def hostile_environment() -> Iterator[dict[str, str]]:
    """An environment in which a service that started would fail loudly or wait: a bad setting,
    a taken HTTP port and servers that refuse connections."""
    dead = f"127.0.0.1:{free_port()}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield clean_environment(
            NATS_URL=f"nats://{dead}",
            CLICKHOUSE_URL=f"clickhouse://{dead}",
            NATS_BATCH_SIZE="lots",
            HTTP_PORT=str(holder.getsockname()[1]),
        )


def run(
    script: str, env: dict[str, str], cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name(script)), *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_prints_usage_and_exits_0_without_starting(
    script: str, hostile_environment: dict[str, str], tmp_path: Path
) -> None:
    done = run(script, hostile_environment, tmp_path, "--help")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {script} [-h] [--version]")
    assert "configuration: environment variables" in done.stdout
    assert done.stderr == ""


def _main_of(script: str) -> Callable[[], None]:
    module = importlib.import_module(f"{script.replace('-', '_')}.__main__")
    main: Callable[[], None] = module.main
    return main


# The same main() as the console script, in this process: parsing happens before anything else,
# so these need no child process (the --help test above shows that in a real one).
@pytest.mark.parametrize("script", SCRIPTS)
def test_version_prints_the_distribution_version_and_exits_0(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [script, "--version"])
    with pytest.raises(SystemExit) as exited:
        _main_of(script)()

    assert exited.value.code == 0
    assert capsys.readouterr() == (f"{script} {version(script)}\n", "")


@pytest.mark.parametrize("script", SCRIPTS)
def test_an_unknown_argument_is_one_line_and_exit_2(
    script: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NATS_BATCH_SIZE", "lots")  # would fail the start, were it reached
    monkeypatch.setattr(sys, "argv", [script, "--rate", "5"])
    with pytest.raises(SystemExit) as exited:
        _main_of(script)()

    assert exited.value.code == 2
    assert capsys.readouterr() == (
        "",
        f"error: usage: unrecognized arguments: --rate 5 (see {script} --help)\n",
    )
