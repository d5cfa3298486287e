"""``<data-dir>/env``: where a running ``ponix dev`` tells the other verbs its URLs.

``ponix dev`` writes the file once its servers are up and removes it when it stops. It is shell
syntax (``source .ponix/env`` exports the URLs into a shell) and carries the pid of the ``ponix
dev`` that wrote it, so a second ``ponix dev`` on the same data dir is refused while the first
one lives.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Final

DATA_DIR_ENV: Final = "PONIX_DATA_DIR"
DEFAULT_DATA_DIR: Final = Path(".ponix")
ENV_FILE_NAME: Final = "env"
PID_VARIABLE: Final = "PONIX_DEV_PID"


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$PONIX_DATA_DIR``, else ``.ponix`` (relative to the working directory)."""
    env = os.environ if environ is None else environ
    configured = env.get(DATA_DIR_ENV, "").strip()
    return Path(configured) if configured else DEFAULT_DATA_DIR


def env_file(directory: Path | None = None) -> Path:
    return (directory if directory is not None else data_dir()) / ENV_FILE_NAME


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines (``export`` and shell quoting allowed, ``#`` comments skipped)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            continue
        try:
            parts = shlex.split(value, comments=True)
        except ValueError:
            parts = [value.strip()]
        values[key] = " ".join(parts)
    return values


def render_env(values: Mapping[str, str], *, pid: int) -> str:
    """The file ``ponix dev`` writes: the URLs as exports, then the pid of the writer."""
    lines = [
        "# Written by `ponix dev` while it runs, removed when it stops.",
        "# ponix verbs run in this directory read it when NATS_URL / CLICKHOUSE_URL are unset;",
        "# `source .ponix/env` exports the same values into a shell.",
    ]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in values.items()]
    lines.append(f"{PID_VARIABLE}={pid}")
    return "\n".join(lines) + "\n"


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of ``path``; empty when it does not exist or cannot be read."""
    try:
        return parse_env(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def write_env_file(path: Path, values: Mapping[str, str], *, pid: int) -> None:
    """Write atomically, so a verb never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{pid}.tmp")
    partial.write_text(render_env(values, pid=pid), encoding="utf-8")
    os.replace(partial, path)


def remove_env_file(path: Path, *, pid: int) -> None:
    """Remove ``path`` if ``pid`` wrote it (a newer ``ponix dev`` may own it by now)."""
    if writer_pid(read_env_file(path)) == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def writer_pid(values: Mapping[str, str]) -> int | None:
    try:
        return int(values.get(PID_VARIABLE, ""))
    except ValueError:
        return None


def live_writer(path: Path) -> int | None:
    """The pid of the ``ponix dev`` that wrote ``path``, if that process still runs."""
    pid = writer_pid(read_env_file(path))
    if pid is None or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, owned by someone else
    return pid
