"""The ingester's Python as its image installs it, for the ``ponix`` contenders.

The workspace's environment also holds the CLI's and the tests' packages, and some of them are
imported when present: structlog imports rich for its tracebacks, 3 MiB of idle RSS that no
deployed ingester carries. ``docker/Dockerfile`` installs the ingester with ``uv sync --locked
--no-dev --package ponix-ingester``; the bench does the same into a venv of its own (the
workspace's packages editable, every version from ``uv.lock``), so it times and weighs what is
deployed. Without uv or the workspace (ponix-bench installed some other way), the bench's own
Python is used, and the report says which.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ("shipped_python",)

# bench/src/ponix_bench/shipped.py -> the workspace root.
_WORKSPACE = Path(__file__).resolve().parents[3]


def shipped_python(workdir: Path) -> tuple[str, str]:
    """The interpreter to run ``ponix_ingester`` with, and how it was made."""
    uv = shutil.which("uv")
    if uv is None or not (_WORKSPACE / "uv.lock").is_file():
        return sys.executable, "the bench's own environment (no uv or no workspace)"
    venv = workdir / "ingester-venv"
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(venv))
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        [uv, "sync", "--locked", "--no-dev", "--package", "ponix-ingester", "--quiet"],
        cwd=_WORKSPACE,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    python = venv / "bin" / "python"
    if done.returncode != 0 or not python.is_file():
        reason = (done.stderr.strip().splitlines() or ["no interpreter"])[-1]
        return sys.executable, f"the bench's own environment (uv sync failed: {reason})"
    return str(python), "ponix-ingester only, as its image (uv sync --no-dev --package)"
