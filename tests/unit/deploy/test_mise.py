""".mise.toml pins the tools the bootstrap and the images use, and its tasks only call make."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from tests.unit.deploy.conftest import REPO

MAKE_TARGET = re.compile(r"^([a-z][a-z-]*):", re.MULTILINE)


def _mise() -> dict[str, Any]:
    return tomllib.loads((REPO / ".mise.toml").read_text(encoding="utf-8"))


def _pinned(path: str, pattern: str) -> str:
    match = re.search(pattern, (REPO / path).read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{path} pins no uv version"
    return match.group(1)


def test_mise_pins_python_and_the_same_uv_as_bootstrap_and_the_dockerfile() -> None:
    tools = _mise()["tools"]
    assert tools["python"] == "3.11"
    assert tools["uv"] == _pinned("scripts/bootstrap.sh", r"^UV_VERSION=(\S+)$")
    assert tools["uv"] == _pinned("docker/Dockerfile", r"^ARG UV_VERSION=(\S+)$")


def test_every_task_runs_one_existing_make_target() -> None:
    targets = set(MAKE_TARGET.findall((REPO / "Makefile").read_text(encoding="utf-8")))
    tasks = _mise()["tasks"]
    assert {"dev", "test:unit", "test:integration", "test:all", "bench"} <= set(tasks)
    for name, task in tasks.items():
        command = task["run"].split()
        assert command[0] == "make", name
        assert len(command) == 2, name
        assert command[1] in targets, f"{name}: no make target {command[1]}"
