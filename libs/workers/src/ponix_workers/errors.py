"""The worker pool's errors: one root, a subclass per way a worker lets its batches down.

None is a user's mistake: each fails the batches it names (they are nakked, never acked), and
a worker that dies fails the service (the runner stops it, exit code 1).
"""

from __future__ import annotations

__all__ = ("WorkerError", "WorkerExitedError", "WorkerFailedBatchError", "WorkerStartError")


class WorkerError(Exception):
    """Root of the pool's errors; ``worker`` names the process (``worker 0 (pid 123)``)."""

    code = "workers.failed"

    def __init__(self, worker: str, message: str) -> None:
        super().__init__(f"{worker} {message}")
        self.worker = worker


class WorkerStartError(WorkerError):
    """A worker exited or did not answer before the start-up deadline."""

    code = "workers.start_failed"


class WorkerExitedError(WorkerError):
    """A worker exited (or its pipe closed) with batches in it; ``returncode`` is its exit
    status, None when the pool closed it."""

    code = "workers.exited"

    def __init__(self, worker: str, message: str, returncode: int | None = None) -> None:
        super().__init__(worker, message)
        self.returncode = returncode


class WorkerFailedBatchError(WorkerError):
    """The processor raised in the worker (its traceback is in the worker's log); ``error``
    is the exception, as text."""

    code = "workers.batch_failed"

    def __init__(self, worker: str, error: str) -> None:
        super().__init__(worker, f"failed the batch: {error}")
        self.error = error
