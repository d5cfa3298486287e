"""Unit tests of the CLI run ``ponix_cli.main`` in process, in an empty directory, with no
NATS_/CLICKHOUSE_ variables, and put the environment and logging back afterwards (verbs set
variables and quiet the root logger on purpose)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_PREFIXES = ("NATS_", "CLICKHOUSE_", "PONIX_", "PRODUCER_", "INGESTER_", "LOG_", "HTTP_")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_logging = (root.handlers[:], root.level)
    for name in list(os.environ):
        if name.upper().startswith(_PREFIXES):
            del os.environ[name]
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved_env)
    root.handlers[:], level = saved_logging
    root.setLevel(level)
