"""The runner's errors: one root, ``RunnerError``, with a subclass for each misuse."""

from __future__ import annotations

__all__ = (
    "AlreadyStartedError",
    "DuplicateNameError",
    "RunnerError",
    "SignalsUnavailableError",
)


class RunnerError(Exception):
    """The root of every error that the runner raises."""


class DuplicateNameError(RunnerError, ValueError):
    """A process or closer is registered under a name that is already taken."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"a {kind} named {name!r} is already registered")
        self.kind = kind
        self.name = name


class AlreadyStartedError(RunnerError, RuntimeError):
    """``run()`` was called a second time, or something was registered after it started."""


class SignalsUnavailableError(RunnerError, RuntimeError):
    """The event loop cannot handle a signal here, for example outside the main thread.

    Pass ``signals=()`` to ``Runner`` to run without signal handling.
    """

    def __init__(self, signal_name: str, reason: str) -> None:
        super().__init__(
            f"cannot handle {signal_name} on this event loop ({reason}); "
            "pass signals=() to run without signal handling"
        )
        self.signal_name = signal_name
        self.reason = reason
