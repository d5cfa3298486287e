"""Readers for the deployment files (compose, Dockerfile, .dockerignore, Tiltfile) and the facts
they are checked against (workspace members, setting names, image tags).

Nothing here needs Docker: the files are parsed the way their tools read them, as closely as a
unit test can, and the real tools are run where one is installable from PyPI (nats-server,
hadolint, starlark-go, chdb).
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DOCKER_DIR = REPO / "docker"
DOCKERFILE = DOCKER_DIR / "Dockerfile"
COMPOSE_FILES = ("compose.deps.yaml", "compose.yaml", "compose.cluster.yaml")

# --------------------------------------------------------------------------------------------
# Compose
# --------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate_defaults(value: str) -> str:
    """``value`` as compose renders it with no variable set: ``${X:-d}`` gives ``d``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        operator, default = match.group(2), match.group(3)
        if operator in (":-", "-"):
            return default
        msg = f"{match.group(0)!r} has no default: the file does not work out of the box"
        raise AssertionError(msg)

    return _INTERPOLATION.sub(one, value)


@dataclass(frozen=True)
class ComposeService:
    name: str
    spec: dict[str, Any]
    source: Path
    """The compose file that defines it; its relative paths resolve against source.parent."""

    @property
    def environment(self) -> dict[str, str]:
        env = self.spec.get("environment", {})
        if isinstance(env, list):
            pairs = (item.split("=", 1) for item in env)
            return dict(pairs)
        return {str(key): str(value) for key, value in env.items()}

    @property
    def build(self) -> dict[str, Any] | None:
        build = self.spec.get("build")
        if build is None:
            return None
        return {"context": build} if isinstance(build, str) else dict(build)

    @property
    def image(self) -> str:
        """The image reference as compose renders it with no variable set."""
        return interpolate_defaults(str(self.spec.get("image", "")))

    @property
    def image_name(self) -> str:
        """The image reference without its tag."""
        return self.image.rsplit(":", 1)[0]

    def path(self, relative: str) -> Path:
        return (self.source.parent / relative).resolve()


@dataclass(frozen=True)
class ComposeProject:
    path: Path
    raw: dict[str, Any]
    services: dict[str, ComposeService]
    """Its own services and those of the files it includes."""
    volumes: frozenset[str]
    included: tuple[Path, ...]


def load_compose(path: Path) -> ComposeProject:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    services: dict[str, ComposeService] = {}
    volumes: set[str] = set((raw.get("volumes") or {}).keys())
    included: list[Path] = []
    for entry in raw.get("include") or ():
        relative = entry if isinstance(entry, str) else entry["path"]
        child = load_compose((path.parent / relative).resolve())
        included.append(child.path)
        clash = set(child.services) & set(services)
        assert not clash, f"{path.name} includes {sorted(clash)} twice"
        services.update(child.services)
        volumes |= child.volumes
    for name, spec in (raw.get("services") or {}).items():
        assert name not in services, f"{path.name} redefines included service {name}"
        services[name] = ComposeService(name, spec, path)
    return ComposeProject(path, raw, services, frozenset(volumes), tuple(included))


@pytest.fixture(scope="session")
def interpolate() -> Callable[[str], str]:
    return interpolate_defaults


@pytest.fixture(scope="session")
def compose_projects() -> dict[str, ComposeProject]:
    return {name: load_compose(DOCKER_DIR / name) for name in COMPOSE_FILES}


# --------------------------------------------------------------------------------------------
# Dockerfile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    cmd: str
    flags: tuple[str, ...]
    args: tuple[str, ...]
    """The exec (JSON) form's list, or the shell form split like a shell would."""
    is_json: bool
    line: int

    def flag(self, name: str) -> str | None:
        prefix = f"--{name}="
        for flag in self.flags:
            if flag.startswith(prefix):
                return flag[len(prefix) :]
        return None


@dataclass(frozen=True)
class Stage:
    name: str
    base: str
    instructions: tuple[Instruction, ...]

    def of(self, cmd: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd == cmd]


@dataclass(frozen=True)
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, target: str) -> list[Stage]:
        """``target`` and the stages it is built FROM, the target first."""
        stages: list[Stage] = []
        name: str | None = target
        while name in self.stages:
            stage = self.stages[name]
            stages.append(stage)
            name = stage.base
        return stages

    def effective(self, target: str, cmd: str) -> Instruction | None:
        """The last ``cmd`` (USER, HEALTHCHECK, ENTRYPOINT) in force in ``target``."""
        for stage in self.chain(target):
            found = stage.of(cmd)
            if found:
                return found[-1]
        return None

    def env(self, target: str) -> dict[str, str]:
        """ENV in force in ``target`` (innermost stage wins)."""
        env: dict[str, str] = {}
        for stage in reversed(self.chain(target)):
            for instruction in stage.of("ENV"):
                pairs = instruction.args
                env.update(zip(pairs[::2], pairs[1::2], strict=True))
        return env

    def base_image(self, target: str) -> str:
        root = self.chain(target)[-1].base
        return re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: self.global_args[m.group(1) or m.group(2)],
            root,
        )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Instructions with continuations joined; comment lines dropped (also inside one)."""
    buffer: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        yield start, " ".join(part for part in buffer if part)
        buffer = []
    assert not buffer, "the Dockerfile ends inside a line continuation"


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: tuple[str, str] | None = None
    body: list[Instruction] = []
    for line, text in _logical_lines(path.read_text(encoding="utf-8")):
        cmd, _, rest = text.partition(" ")
        cmd = cmd.upper()
        rest = rest.strip()
        flags: list[str] = []
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if cmd == "HEALTHCHECK" and rest.startswith("CMD "):
            rest = rest[len("CMD ") :].strip()
        is_json = rest.startswith("[")
        if is_json:
            args = tuple(json.loads(rest))
        elif cmd == "ENV":
            args = tuple(part for pair in shlex.split(rest) for part in pair.split("=", 1))
        else:
            args = tuple(shlex.split(rest))
        instruction = Instruction(cmd, tuple(flags), args, is_json, line)
        if cmd == "FROM":
            if current is not None:
                stages[current[0]] = Stage(current[0], current[1], tuple(body))
            assert len(args) == 3, f"line {line}: name every stage (FROM image AS name)"
            assert args[1].upper() == "AS", f"line {line}: name every stage (FROM image AS name)"
            current, body = (args[2], args[0]), []
        elif current is None:
            assert cmd == "ARG", f"line {line}: only ARG may precede the first FROM"
            name, _, default = args[0].partition("=")
            global_args[name] = default
        else:
            body.append(instruction)
    assert current is not None, "the Dockerfile has no FROM"
    stages[current[0]] = Stage(current[0], current[1], tuple(body))
    return Dockerfile(global_args, stages)


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


# --------------------------------------------------------------------------------------------
# .dockerignore (moby/patternmatcher semantics: last matching rule wins, parents count)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IgnoreRule:
    regex: re.Pattern[str]
    negated: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
            continue
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[IgnoreRule, ...]

    @classmethod
    def read(cls, path: Path) -> DockerIgnore:
        rules: list[IgnoreRule] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            negated = text.startswith("!")
            text = text.removeprefix("!").strip().strip("/")
            rules.append(IgnoreRule(_pattern_regex(text), negated))
        return cls(tuple(rules))

    def excludes(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for rule in self.rules:
            if any(rule.regex.fullmatch(c) for c in candidates):
                excluded = not rule.negated
        return excluded


@pytest.fixture(scope="session")
def dockerignore() -> DockerIgnore:
    return DockerIgnore.read(REPO / ".dockerignore")


# --------------------------------------------------------------------------------------------
# The workspace and its settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    path: str
    """Relative to the repository root, e.g. ``services/ingester``."""
    name: str
    scripts: dict[str, str] = field(default_factory=dict)
    requires_python: str = ""


@pytest.fixture(scope="session")
def workspace_members() -> dict[str, Member]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    members: dict[str, Member] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for pyproject in sorted(REPO.glob(f"{pattern}/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            relative = pyproject.parent.relative_to(REPO).as_posix()
            members[project["name"]] = Member(
                relative,
                project["name"],
                dict(project.get("scripts", {})),
                project.get("requires-python", ""),
            )
    assert members, "no workspace members found"
    return members


@pytest.fixture(scope="session")
def settings_classes() -> list[type[Any]]:
    """Every PonixSettings subclass of the libs and services (their settings modules)."""
    from ponix_config import PonixSettings

    for src in sorted(REPO.glob("*/*/src/ponix_*/settings.py")):
        importlib.import_module(f"{src.parent.name}.settings")
    found: list[type[Any]] = []
    pending: list[type[Any]] = [PonixSettings]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


@pytest.fixture(scope="session")
def known_env_names(settings_classes: list[type[Any]]) -> frozenset[str]:
    """Every variable a Ponix service reads: the fields of its settings classes."""
    return frozenset(cls.env_name(name) for cls in settings_classes for name in cls.model_fields)
