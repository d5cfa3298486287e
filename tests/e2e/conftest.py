"""Driving the real ``ponix`` command line as subprocesses, against real servers.

``python -m ponix_cli`` is the console script without ``uv run``'s start-up. Every subprocess
runs in the test's own directory (no stray ``.env`` or ``.ponix/env``) with the developer's
``NATS_*``/``CLICKHOUSE_*``/... variables removed, so only what the test sets is used.
Waits are on conditions with a monotonic deadline: there is no event to wait on in another
process, so each one polls with a short, growing gap.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from clickhouse_driver import Client

from ponix_devstack import free_port
from tests.support.pipeline import Metrics

T = TypeVar("T")

PONIX = (sys.executable, "-m", "ponix_cli")
_FOREIGN = ("NATS_", "CLICKHOUSE_", "PONIX_", "PRODUCER_", "INGESTER_", "LOG_", "HTTP_")


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_FOREIGN)}
    env["LOG_FORMAT"] = "json"
    env.update(extra)
    return env


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """``check()`` until it returns something other than None/False, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    gap = 0.05
    last: object = None
    while True:
        try:
            result = check()
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            result, last = None, exc
        if result is not None and result is not False:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what} (last error: {last})")
        time.sleep(gap)
        gap = min(gap * 2, 0.5)


@dataclass
class Service:
    """A long-running ``ponix`` verb (dev, run, ingest) with its output in files."""

    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    http_port: int

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def readyz(self) -> tuple[int, dict[str, Any]]:
        return http_json(f"http://127.0.0.1:{self.http_port}/readyz")

    def metrics(self) -> Metrics:
        return read_metrics(self.http_port)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")
            return self.readyz()[0] == 200

        wait_until(ready, timeout=timeout, what=f"/readyz on :{self.http_port}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop within {timeout:g}s of {sig.name}:\n{self.stderr()[-3000:]}")


@dataclass
class Cli:
    """``ponix`` in ``cwd`` with ``env``; ``run`` for short verbs, ``start`` for services."""

    cwd: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def run(
        self, *args: str, timeout: float = 60.0, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PONIX, *args],
            cwd=self.cwd,
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(self, *args: str, **env: str) -> str:
        """Run a verb that must succeed; its stdout."""
        done = self.run(*args, **env)
        assert done.returncode == 0, f"ponix {' '.join(args)}: {done.returncode}\n{done.stderr}"
        return done.stdout

    def start(self, *args: str, http_port: int | None = None, **env: str) -> Service:
        port = http_port or free_port()
        n = len(self.services)
        out, err = self.cwd / f"service-{n}.out", self.cwd / f"service-{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                [*PONIX, *args],
                cwd=self.cwd,
                env={**self.env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port), **env},
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )
        service = Service(proc, out, err, port)
        self.services.append(service)
        return service


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path, clean_environment())
    yield runner
    for service in runner.services:
        if service.proc.poll() is None:
            service.proc.kill()
            service.proc.wait()


@pytest.fixture
def pipeline_env(
    nats_url: str, clickhouse_url: str, clickhouse_db: str, unique: str
) -> dict[str, str]:
    """The session's servers, with this test's own stream, consumer, DLQ and database."""
    return {
        "NATS_URL": nats_url,
        "CLICKHOUSE_URL": clickhouse_url,
        "CLICKHOUSE_DATABASE": clickhouse_db,
        "NATS_STREAM": f"PE_{unique}",
        "NATS_SUBJECT_PREFIX": f"pe_{unique}",
        "NATS_CONSUMER": f"writer_{unique}",
        "NATS_DLQ_STREAM": f"PE_{unique}_DLQ",
        "NATS_DLQ_SUBJECT": f"pe_{unique}_dlq",
        # A short duplicate window lets a redrive in the test pass JetStream's dedup quickly.
        "NATS_DUPLICATE_WINDOW": "1",
        "NATS_FETCH_EXPIRES": "0.5",
    }


def exact_rows(clickhouse_url: str, sql: str) -> int:
    """One count from ClickHouse, in process: polling through ``ponix query`` would spend a
    second of interpreter start-up per look."""
    client = Client.from_url(clickhouse_url)
    try:
        return int(client.execute(sql)[0][0])
    finally:
        client.disconnect()


def http_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as reply:
        return reply.code, json.loads(reply.read())


def read_metrics(port: int) -> Metrics:
    """One scrape of ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return Metrics.parse(reply.read().decode())


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (children left running, say)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (servers, workers): they must be gone once it exits."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line a failed verb printed; fails on anything more."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
