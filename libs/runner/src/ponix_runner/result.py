"""What a run ended with: why it stopped, what failed, how each closer did, and the exit code."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = (
    "CloserOutcome",
    "CloserStatus",
    "ExitCode",
    "ProcessFailure",
    "RunResult",
    "ShutdownReason",
)


class ShutdownReason(enum.StrEnum):
    """The first thing that started the shutdown. Anything that happens later does not change it."""

    SIGNAL = "signal"
    """SIGTERM or SIGINT (see ``RunResult.signal``)."""
    REQUESTED = "requested"
    """``Runner.shutdown()`` was called."""
    PROCESS_FAILED = "process_failed"
    """A critical process raised."""
    PROCESS_RETURNED = "process_returned"
    """A critical process returned before shutdown was requested, without ``may_return=True``."""
    ALL_DONE = "all_done"
    """Every process ended on its own, or no process was registered."""
    CANCELLED = "cancelled"
    """``run()`` itself was cancelled. This shows only in logs: a cancelled ``run()`` re-raises."""


class ExitCode(enum.IntEnum):
    """Process exit codes. When several apply, the first one in this list wins."""

    PROCESS_FAILED = 1
    """A process failed: it raised, returned early, or would not stop when cancelled."""
    FORCED = 130
    """A second SIGINT cut the shutdown short (128 + SIGINT, as for a shell's Ctrl-C)."""
    CLOSER_FAILED = 3
    """Every process was fine, but a closer raised, timed out or was skipped."""
    OK = 0
    """A clean shutdown: no process failed, every closer succeeded, nothing was forced."""


@dataclass(frozen=True, slots=True)
class ProcessFailure:
    """A process that failed.

    ``error`` is ``None`` when the process returned early or would not stop on cancellation.
    """

    name: str
    error: BaseException | None
    message: str


class CloserStatus(enum.StrEnum):
    """How one closer ended."""

    OK = "ok"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    """A forced shutdown used up its budget before this closer could start."""


@dataclass(frozen=True, slots=True)
class CloserOutcome:
    """How one closer ended, and how long it took, in seconds."""

    name: str
    status: CloserStatus
    elapsed: float
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What ``Runner.run()`` returns once shutdown is complete."""

    reason: ShutdownReason
    signal: str | None
    """The name of the signal that started the shutdown (``"SIGTERM"``), if one did."""
    failures: tuple[ProcessFailure, ...]
    cancelled: tuple[str, ...]
    """Processes still running when the grace period ended, which the runner then cancelled."""
    closers: tuple[CloserOutcome, ...]
    """One outcome per closer, in registration order."""
    forced: bool
    """Whether a second SIGINT (or a second cancellation of ``run()``) forced the shutdown."""

    @property
    def exit_code(self) -> ExitCode:
        """The process exit code: see ``ExitCode`` for the table and for which code wins."""
        if self.failures:
            return ExitCode.PROCESS_FAILED
        if self.forced:
            return ExitCode.FORCED
        if any(closer.status is not CloserStatus.OK for closer in self.closers):
            return ExitCode.CLOSER_FAILED
        return ExitCode.OK

    @property
    def ok(self) -> bool:
        """Whether the exit code is ``ExitCode.OK``."""
        return self.exit_code is ExitCode.OK
