"""The compose files users run, driven through the real ``docker compose`` CLI.

These tests need a Docker engine with Compose >= 2.20 and take minutes (image builds), so
``make test`` skips them; ``make test-docker`` runs them. The images come from the variables a
user sets (``NATS_IMAGE``, ``CLICKHOUSE_IMAGE``, ``PYTHON_IMAGE``, ``ZOOKEEPER_IMAGE``,
``BUILD_NETWORK``, ``CLICKHOUSE_NOFILE``): the official images by default, local stand-ins where
no registry is reachable. Host ports are free ones picked here, so a run never collides with a
dev stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from ponix_devstack import free_port
from tests.e2e.conftest import clean_environment

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"

# What a user may set to pick images and fit the host; passed through to compose as they are.
DEPLOY_VARIABLES = (
    "NATS_IMAGE",
    "CLICKHOUSE_IMAGE",
    "PYTHON_IMAGE",
    "BUILD_NETWORK",
    "CLICKHOUSE_NOFILE",
    "ZOOKEEPER_IMAGE",
)
HOST_PORT_VARIABLES = (
    "NATS_HOST_PORT",
    "NATS_MONITOR_HOST_PORT",
    "CLICKHOUSE_HOST_PORT",
    "CLICKHOUSE_HTTP_HOST_PORT",
    "PRODUCER_METRICS_HOST_PORT",
    "INGESTER_METRICS_HOST_PORT",
)


def compose_environment(**extra: str) -> dict[str, str]:
    """The developer's environment without Ponix settings, plus the deployment variables."""
    env = clean_environment(**extra)
    env.pop("LOG_FORMAT", None)
    env.update({name: os.environ[name] for name in DEPLOY_VARIABLES if os.environ.get(name)})
    return env


def envelope_lines(organization: str, start: int, count: int) -> str:
    """``count`` envelopes of ``organization`` as JSON lines for ``ponix publish --file -``."""
    return "".join(
        json.dumps(
            {
                "organization_id": organization,
                "end_device_id": f"device-{n % 16}",
                "occurred_at": "2026-12-06T10:00:00Z",
                "data": {"n": n},
            }
        )
        + "\n"
        for n in range(start, start + count)
    )


@dataclass(frozen=True)
class ComposeProject:
    """One ``docker compose -p <project> -f <file>...`` project and the variables it runs with."""

    files: tuple[Path, ...]
    project: str
    env: dict[str, str]

    @property
    def _argv(self) -> list[str]:
        argv = ["docker", "compose", "-p", self.project]
        for file in self.files:
            argv += ["-f", str(file)]
        return argv

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self._argv, *args]
        done = subprocess.run(
            argv,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"`docker compose {' '.join(args)}` exited {done.returncode}:\n"
                f"{done.stderr[-3000:]}\n--- logs ---\n{self.logs()}"
            )
        return done

    def logs(self) -> str:
        done = subprocess.run(
            [*self._argv, "logs", "--no-color", "--tail", "30"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout[-6000:]

    def container(self, service: str) -> dict[str, Any]:
        """``docker inspect`` of the service's (first) container, running or not."""
        ids = self.run("ps", "--all", "--quiet", service).stdout.split()
        assert ids, f"{service} has no container"
        done = subprocess.run(
            ["docker", "inspect", ids[0]], capture_output=True, text=True, check=True, timeout=30
        )
        inspected: list[dict[str, Any]] = json.loads(done.stdout)
        return inspected[0]

    def services(self) -> list[str]:
        return self.run("config", "--services").stdout.split()

    def volumes(self) -> list[str]:
        label = f"com.docker.compose.project={self.project}"
        done = subprocess.run(
            ["docker", "volume", "ls", "--quiet", "--filter", f"label={label}"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return done.stdout.split()

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.run("down", "--volumes", "--remove-orphans", "--timeout", "30", check=False)


def _compose_available() -> str | None:
    """Why the compose tests cannot run here, or None when they can."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        version = subprocess.run(
            ["docker", "compose", "version", "--short"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        engine = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker does not answer: {exc}"
    if version.returncode != 0:
        return "no Compose v2 plugin (`docker compose version` failed)"
    if engine.returncode != 0:
        return "no Docker engine answers (`docker info` failed)"
    return None


COMPOSE_ENV = "PONIX_TEST_COMPOSE"


@pytest.fixture(scope="session")
def docker_compose() -> None:
    """Skipped unless ``PONIX_TEST_COMPOSE=1`` (``make test-docker`` sets it); then it fails,
    not skips, when the engine or Compose is missing: the run asked for Docker."""
    if os.environ.get(COMPOSE_ENV, "").strip() != "1":
        pytest.skip(f"the compose stack runs with `make test-docker` ({COMPOSE_ENV}=1)")
    reason = _compose_available()
    if reason is not None:
        pytest.fail(f"{reason}; `make test-docker` needs Docker with Compose >= 2.20")


def new_project(*files: str, **extra: str) -> ComposeProject:
    """Compose ``files`` (under docker/) as a project of its own, on free host ports, with a
    fresh password."""
    ports = {name: str(free_port()) for name in HOST_PORT_VARIABLES}
    secret = uuid4().hex
    env = compose_environment(
        **ports,
        NATS_USER="ponix",
        NATS_PASSWORD=secret,
        CLICKHOUSE_USER="ponix",
        CLICKHOUSE_PASSWORD=secret,
        CLICKHOUSE_DATABASE="ponix",
        PRODUCER_RATE="50",
        **extra,
    )
    paths = tuple(DOCKER_DIR / name for name in files)
    return ComposeProject(paths, f"ponix-test-{uuid4().hex[:8]}", env)


@pytest.fixture
def compose_project(docker_compose: None) -> Iterator[ComposeProject]:
    """docker/compose.yaml as a project of its own; ``down --volumes`` afterwards."""
    project = new_project("compose.yaml")
    try:
        yield project
    finally:
        project.down()
