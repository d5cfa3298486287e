"""Where output goes: results on stdout, progress and warnings on stderr.

Short verbs print clean human output to stdout and nothing else there, so ``ponix query ... |
sort`` and ``ponix status --json | jq`` work. Logging is quiet for them unless ``LOG_LEVEL`` is
set; the long-running verbs (dev, run, produce, ingest) configure structured logs themselves.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import typer
from rich.console import Console

from ponix_cli.errors import INTERRUPTED

T = TypeVar("T")

# Off a terminal rich would wrap at 80 columns; piped tables are read by wider tools.
_PIPE_WIDTH = 200


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def out() -> Console:
    """A console on stdout (no colour and wide when piped)."""
    tty = stdout_is_tty()
    return Console(
        file=sys.stdout,
        width=None if tty else _PIPE_WIDTH,
        no_color=not tty,
        highlight=False,
        soft_wrap=not tty,
    )


def err() -> Console:
    """A console on stderr, for progress bars and warnings."""
    return Console(file=sys.stderr, highlight=False, stderr=True)


def say(text: str = "") -> None:
    """One line of plain output on stdout."""
    typer.echo(text)


def warn(text: str) -> None:
    """One line on stderr."""
    typer.echo(text, err=True)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop roughly halves nats-py's per-message cost (audit reads every message).
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def quiet_logging() -> None:
    """Short verbs log only when asked (``LOG_LEVEL=debug ponix status``), to stderr."""
    if os.environ.get("LOG_LEVEL", "").strip():
        from ponix_config import TelemetrySettings, load_settings
        from ponix_telemetry import configure_logging

        configure_logging(load_settings(TelemetrySettings), stream=sys.stderr)
        return
    root = logging.getLogger()
    root.handlers[:] = [logging.NullHandler()]
    root.setLevel(logging.CRITICAL)


def run_async(
    main: Callable[[], Coroutine[Any, Any, T]], *, interrupt_code: int = INTERRUPTED
) -> T:
    """Run a short verb's coroutine on uvloop when installed.

    Ctrl-C exits with ``interrupt_code`` (130, or 0 for a verb that runs until Ctrl-C, such
    as ``status --watch``) without a traceback.
    """
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(main())
    except KeyboardInterrupt:
        if interrupt_code:
            warn("interrupted")
        raise typer.Exit(interrupt_code) from None
