"""Supervisor for named asyncio processes with ordered, bounded closers.

See ``ponix_runner.runner`` for the lifecycle and ``ExitCode`` for the exit-code table.
"""

from ponix_runner.backoff import Backoff
from ponix_runner.deadline import Deadline
from ponix_runner.errors import (
    AlreadyStartedError,
    DuplicateNameError,
    RunnerError,
    SignalsUnavailableError,
)
from ponix_runner.main import run_main, user_error_line
from ponix_runner.result import (
    CloserOutcome,
    CloserStatus,
    ExitCode,
    ProcessFailure,
    RunResult,
    ShutdownReason,
)
from ponix_runner.runner import CloserFn, ProcessFn, Runner
from ponix_runner.startup import wait_until_available
from ponix_runner.token import ShutdownSignal, ShutdownSource, ShutdownToken

__all__ = (
    "AlreadyStartedError",
    "Backoff",
    "CloserFn",
    "CloserOutcome",
    "CloserStatus",
    "Deadline",
    "DuplicateNameError",
    "ExitCode",
    "ProcessFailure",
    "ProcessFn",
    "RunResult",
    "Runner",
    "RunnerError",
    "ShutdownReason",
    "ShutdownSignal",
    "ShutdownSource",
    "ShutdownToken",
    "SignalsUnavailableError",
    "run_main",
    "user_error_line",
    "wait_until_available",
)
