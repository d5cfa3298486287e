"""``run_main``: the body of a service's ``main()``, from event loop to exit code."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any, cast

from ponix_runner.errors import RunnerError
from ponix_runner.result import ExitCode, RunResult

__all__ = ("run_main", "user_error_line")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def run_main(
    main: Callable[[], Coroutine[Any, Any, RunResult | int | None]],
    *,
    use_uvloop: bool | None = None,
) -> int:
    """Run ``main()`` on a fresh event loop and return the process exit code.

    ``main`` typically does the start-up steps, then returns ``await runner.run()``. Its result
    becomes the exit code: a ``RunResult`` gives its ``exit_code``, an ``int`` is used as is, and
    ``None`` gives 0. An exception raised by ``main`` propagates.

    A Ctrl-C that arrives before the runner has installed its handlers gives
    ``ExitCode.FORCED`` (130). Services install them before their start-up waits for any server
    (``Runner.start_up``), so there a signal stops them cleanly (0).

    Args:
        use_uvloop: ``None`` uses uvloop if it is installed, ``True`` requires it, and ``False``
            uses the default asyncio loop.

    An exception that carries a stable string ``code`` (every error a user can cause, such as
    a bad setting or an unreachable server) is printed as one line, ``error: <code>: <reason>``,
    and gives exit code 1 instead of a traceback.

    Use it as ``raise SystemExit(run_main(_main))``.
    """
    loop_factory = _uvloop_factory() if use_uvloop is not False else None
    if use_uvloop and loop_factory is None:
        raise RunnerError("uvloop was requested but is not installed: `uv add uvloop`")
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            outcome = runner.run(main())
    except KeyboardInterrupt:
        return int(ExitCode.FORCED)
    except Exception as exc:
        line = user_error_line(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)  # noqa: T201 - the one line a user reads
        return int(ExitCode.PROCESS_FAILED)
    if isinstance(outcome, RunResult):
        return int(outcome.exit_code)
    return 0 if outcome is None else int(outcome)


def _uvloop_factory() -> LoopFactory | None:
    # Imported by name so that uvloop stays an optional extra rather than a dependency.
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return cast(LoopFactory, uvloop.new_event_loop)


def user_error_line(exc: BaseException) -> str | None:
    """The one line to show for an error a user can cause, or ``None`` for a bug.

    Such errors carry a stable string ``code`` and render as one line; anything else is a bug
    and keeps its traceback.
    """
    if not isinstance(getattr(exc, "code", None), str):
        return None
    text = str(exc).strip().splitlines()
    return text[0] if text else str(getattr(exc, "code", ""))
