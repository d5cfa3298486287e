"""The runner: named processes, one shutdown token, ordered closers, and signal handling.

Lifecycle of ``await Runner.start_up(start)`` (optional), then ``await Runner.run()``:

0. ``start_up`` installs the SIGINT/SIGTERM handlers and awaits ``start()`` (connecting, waiting
   for servers). A signal during it cancels ``start()``; ``run()`` then starts no process, runs
   the closers registered so far, and reports ``ShutdownReason.SIGNAL``, as in steps 3-6.
1. Install the SIGINT/SIGTERM handlers (unless ``start_up`` did), then start every process as a
   task that the runner owns.
2. Wait for the first trigger: a signal, ``shutdown()``, a critical process raising, a critical
   process returning before shutdown without ``may_return=True``, or every process having ended.
3. Set the token. Processes get ``grace`` seconds to return on their own.
4. Cancel the processes that are still running, and wait up to ``cancel_timeout`` for them.
   A process that is still running after that is reported as a failure and left behind.
5. Run the closers one at a time, in registration order, each within its own timeout. A closer
   that raises or times out is logged and recorded, and the next one still runs.
6. Remove the signal handlers, restore the previous ones, and return a ``RunResult``.

A SIGINT that arrives during steps 3-5 (Ctrl-C twice) forces the shutdown: the rest of the grace
period is skipped, the processes are cancelled at once, and what is left (waiting for the cancelled
processes, then the remaining closers) shares one ``force_budget``. A closer that is running when
the force arrives is cut to that budget. Closers that no longer fit are skipped. A repeated
SIGTERM never forces: a SIGTERM sent to a process group arrives once per process that forwards it,
and means one request to stop. Nor does a SIGINT within 0.5 s of a first SIGINT (a forwarded copy).

If ``run()`` itself is cancelled, it still goes through steps 3-6 and then re-raises the
``CancelledError``. A second cancellation during that cleanup forces it, as a second signal does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeVar

from ponix_runner.deadline import Deadline
from ponix_runner.errors import AlreadyStartedError, DuplicateNameError, SignalsUnavailableError
from ponix_runner.result import (
    CloserOutcome,
    CloserStatus,
    ProcessFailure,
    RunResult,
    ShutdownReason,
)
from ponix_runner.token import ShutdownSource, ShutdownToken

__all__ = ("CloserFn", "ProcessFn", "Runner")

_log = logging.getLogger(__name__)

ProcessFn = Callable[[ShutdownToken], Awaitable[None]]
"""A process: ``async def fn(token: ShutdownToken) -> None``."""
CloserFn = Callable[[], Awaitable[None]]
"""A closer: ``async def fn() -> None``."""

# Timers may fire a hair before the monotonic deadline (uvloop's clock is millisecond-grained), so
# a forced shutdown skips a closer rather than starting it with a budget too small to use.
_MIN_FORCED_CLOSER_BUDGET = 0.01

# A SIGINT this soon after the one that started the shutdown is taken for a forwarded copy of it,
# not for Ctrl-C twice.
_SIGINT_ECHO = 0.5

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Process:
    name: str
    fn: ProcessFn
    critical: bool
    may_return: bool


@dataclass(frozen=True, slots=True)
class _Closer:
    name: str
    fn: CloserFn
    timeout: float


@dataclass(frozen=True, slots=True)
class _Step:
    bound: asyncio.Timeout
    is_grace: bool


class Runner:
    """Runs named processes until the first trigger, then shuts them down and runs the closers.

    Args:
        grace: seconds the processes get to return on their own once the token is set.
        cancel_timeout: seconds to wait for the processes cancelled after the grace period.
        force_budget: seconds that everything left gets once the shutdown is forced by a second
            SIGINT.
        signals: the signals that start a shutdown. Pass ``()`` to run without signal handlers,
            for example outside the main thread.
    """

    def __init__(
        self,
        *,
        grace: float = 3.0,
        cancel_timeout: float = 1.0,
        force_budget: float = 1.0,
        signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    ) -> None:
        _check_seconds("grace", grace, allow_zero=True)
        _check_seconds("cancel_timeout", cancel_timeout, allow_zero=False)
        _check_seconds("force_budget", force_budget, allow_zero=False)
        self._grace = grace
        self._cancel_timeout = cancel_timeout
        self._force_budget = force_budget
        self._signals = tuple(signals)
        self._processes: dict[str, _Process] = {}
        self._closers: dict[str, _Closer] = {}
        self._shutdown = ShutdownSource()
        self._started = False
        self._reason: ShutdownReason | None = None
        self._signal_name: str | None = None
        self._force_deadline: Deadline | None = None
        self._step: _Step | None = None
        self._live = 0
        self._failures: list[ProcessFailure] = []
        self._cancelled: list[str] = []
        self._handlers: list[tuple[signal.Signals, _Handler]] | None = None
        self._start_up: asyncio.Task[Any] | None = None
        self._first_signal: tuple[signal.Signals, float] | None = None

    def add_process(
        self, name: str, fn: ProcessFn, *, critical: bool = True, may_return: bool = False
    ) -> None:
        """Register ``fn`` to run as a process named ``name``.

        Args:
            critical: when ``True``, a failure of this process starts the shutdown. When
                ``False``, the failure is logged and recorded (so the exit code is still 1),
                and the other processes keep running.
            may_return: when ``True``, returning before shutdown is a normal end rather than a
                failure, and the other processes keep running. Once every process has ended,
                the run shuts down with ``ShutdownReason.ALL_DONE``.
        """
        self._check_not_started()
        if name in self._processes:
            raise DuplicateNameError("process", name)
        self._processes[name] = _Process(name, fn, critical, may_return)

    def add_closer(self, name: str, fn: CloserFn, *, timeout: float = 5.0) -> None:
        """Register ``fn`` to run during shutdown, after every registered closer before it.

        Closers run after the processes have stopped, whatever the reason for the shutdown.
        Each one is bounded by ``timeout`` seconds.
        """
        self._check_not_started()
        _check_seconds("timeout", timeout, allow_zero=False)
        if name in self._closers:
            raise DuplicateNameError("closer", name)
        self._closers[name] = _Closer(name, fn, timeout)

    def shutdown(self) -> None:
        """Request a shutdown, as a signal would.

        Call it from the event loop's thread; from another thread, use
        ``loop.call_soon_threadsafe(runner.shutdown)``. Calling it again does nothing: unlike a
        second signal, it never forces the shutdown. If it is called before ``run()``, then
        ``run()`` starts no process and only runs the closers; during ``start_up()``, it also
        cancels the start-up.
        """
        self._request(ShutdownReason.REQUESTED)

    async def start_up(self, start: Callable[[], Awaitable[T]]) -> T | None:
        """Await ``start()`` with the runner's signal handlers already installed.

        A service's start-up (waiting with backoff for its servers, say) can take minutes; a
        SIGTERM or SIGINT then must stop it as it stops a running service. The first signal
        cancels ``start()`` and this returns ``None`` (``start()`` is expected to release what
        it holds as the ``CancelledError`` passes through it); ``run()`` then starts no
        process, runs the closers registered so far, and returns a ``RunResult`` with reason
        ``SIGNAL``: exit code 0, as for a signal once running. A second SIGINT forces, as it
        does once running (exit code 130), and cancels ``start()`` again.

        The handlers stay installed until ``run()`` ends, so that a signal between the two is
        not lost: call ``run()`` next, after registering what ``start()`` returned. If
        ``start()`` raises, the handlers are removed and the error propagates. If shutdown was
        requested before, ``start()`` is not called and this returns ``None``.
        """
        self._check_not_started()
        if self._start_up is not None:
            raise AlreadyStartedError("start_up() is already running")
        loop = asyncio.get_running_loop()
        self._install_signal_handlers(loop)
        if self._reason is not None:
            return None
        # A task of its own: a signal cancels it, not the caller, so the caller's own
        # cancellation (an outer timeout, say) still reads as its own.
        task = asyncio.create_task(_call(start), name="ponix-runner:start-up")
        self._start_up = task
        try:
            return await task
        except asyncio.CancelledError:
            if task.cancelled() and self._shutdown.is_set and not _cancel_requested():
                return None
            self._remove_signal_handlers(loop)
            raise
        except BaseException:
            self._remove_signal_handlers(loop)
            raise
        finally:
            self._start_up = None

    async def run(self) -> RunResult:
        """Run the processes until the first trigger, then shut down. Only once per runner.

        Returns the ``RunResult``. If the task running this is cancelled, the shutdown still runs
        in full, and then the ``CancelledError`` is re-raised.
        """
        self._check_not_started()
        self._started = True
        loop = asyncio.get_running_loop()
        self._install_signal_handlers(loop)
        try:
            return await self._supervise()
        finally:
            self._remove_signal_handlers(loop)

    async def _supervise(self) -> RunResult:
        tasks: dict[str, asyncio.Task[None]] = {}
        if self._reason is None:
            self._live = len(self._processes)
            for process in self._processes.values():
                tasks[process.name] = asyncio.create_task(
                    self._run_process(process), name=f"ponix-runner:{process.name}"
                )
            _log.info("runner started", extra={"processes": tuple(tasks)})
            if not tasks:
                self._request(ShutdownReason.ALL_DONE)
        cancelled: asyncio.CancelledError | None = None
        try:
            await self._shutdown.wait()
        except asyncio.CancelledError as exc:
            cancelled = exc
            if not self._request(ShutdownReason.CANCELLED):
                self._force("run cancelled")
        # The shutdown runs in its own task so that cancelling run() cannot cut it short, and
        # so that its timeouts are not confused by a cancellation pending on this task.
        sequence = asyncio.create_task(self._shut_down(tasks), name="ponix-runner:shutdown")
        while not sequence.done():
            try:
                await asyncio.shield(sequence)
            except asyncio.CancelledError as exc:
                cancelled = cancelled or exc
                self._force("run cancelled")
        result = sequence.result()
        if cancelled is not None:
            raise cancelled
        return result

    async def _run_process(self, process: _Process) -> None:
        try:
            await process.fn(self._shutdown.token)
        except asyncio.CancelledError as exc:
            if _cancel_requested():
                raise
            self._fail(process, exc, "was cancelled without a cancel request")
        except Exception as exc:  # noqa: BLE001 - any exception is a process failure, recorded and logged with its traceback
            self._fail(process, exc, f"raised {type(exc).__name__}: {exc}")
        else:
            if self._shutdown.is_set:
                _log.debug("process stopped", extra={"process_name": process.name})
            elif process.may_return:
                _log.info("process finished", extra={"process_name": process.name})
            else:
                self._fail(process, None, "returned before shutdown was requested")
        self._live -= 1
        if self._live == 0:
            self._request(ShutdownReason.ALL_DONE)

    def _fail(self, process: _Process, error: BaseException | None, message: str) -> None:
        self._failures.append(ProcessFailure(process.name, error, message))
        _log.error(
            "process failed",
            exc_info=error,
            extra={"process_name": process.name, "failure": message, "critical": process.critical},
        )
        if process.critical:
            reason = (
                ShutdownReason.PROCESS_RETURNED if error is None else ShutdownReason.PROCESS_FAILED
            )
            self._request(reason)

    async def _shut_down(self, tasks: dict[str, asyncio.Task[None]]) -> RunResult:
        reason = self._reason
        grace = self._shutdown.deadline
        if reason is None or grace is None:  # pragma: no cover - _request sets both first
            raise AssertionError("shutdown started before it was requested")
        pending = [task for task in tasks.values() if not task.done()]
        if pending and self._force_deadline is None:
            with contextlib.suppress(TimeoutError):
                async with self._bounded(grace.remaining(), is_grace=True):
                    await asyncio.wait(pending)
        await self._cancel_stragglers(tasks)
        closers = tuple([await self._close(closer) for closer in self._closers.values()])
        result = RunResult(
            reason=reason,
            signal=self._signal_name,
            failures=tuple(self._failures),
            cancelled=tuple(self._cancelled),
            closers=closers,
            forced=self._force_deadline is not None,
        )
        _log.info(
            "runner stopped",
            extra={
                "reason": reason.value,
                "signal_name": result.signal,
                "exit_code": int(result.exit_code),
                "forced": result.forced,
                "failed_processes": tuple(failure.name for failure in result.failures),
            },
        )
        return result

    async def _cancel_stragglers(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        stragglers = {name: task for name, task in tasks.items() if not task.done()}
        if not stragglers:
            return
        for name, task in stragglers.items():
            _log.warning(
                "cancelling process",
                extra={"process_name": name, "forced": self._force_deadline is not None},
            )
            self._cancelled.append(name)
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with self._bounded(self._cancel_timeout):
                await asyncio.wait(stragglers.values())
        for name, task in stragglers.items():
            if not task.done():
                message = "would not stop after it was cancelled"
                self._failures.append(ProcessFailure(name, None, message))
                _log.error("process failed", extra={"process_name": name, "failure": message})

    async def _close(self, closer: _Closer) -> CloserOutcome:
        fields: dict[str, object] = {"closer": closer.name, "timeout_s": closer.timeout}
        if (
            self._force_deadline is not None
            and self._force_deadline.remaining() < _MIN_FORCED_CLOSER_BUDGET
        ):
            _log.warning("closer skipped", extra=fields)
            return CloserOutcome(closer.name, CloserStatus.SKIPPED, 0.0)
        started = time.monotonic()
        bound: asyncio.Timeout | None = None
        status = CloserStatus.OK
        error: BaseException | None = None
        try:
            async with self._bounded(closer.timeout) as bound:
                await closer.fn()
        except TimeoutError as exc:
            if bound is not None and bound.expired():
                status = CloserStatus.TIMED_OUT
            else:
                status, error = CloserStatus.FAILED, exc
        except asyncio.CancelledError as exc:
            if _cancel_requested():
                raise
            status, error = CloserStatus.FAILED, exc
        except Exception as exc:  # noqa: BLE001 - a failing closer must not stop the next ones; it is logged below
            status, error = CloserStatus.FAILED, exc
        elapsed = time.monotonic() - started
        fields["elapsed_s"] = round(elapsed, 3)
        if status is CloserStatus.OK:
            _log.info("closer done", extra=fields)
        elif status is CloserStatus.TIMED_OUT:
            _log.error("closer timed out", extra=fields)
        else:
            _log.error("closer failed", exc_info=error, extra=fields)
        return CloserOutcome(closer.name, status, elapsed, error)

    @contextlib.asynccontextmanager
    async def _bounded(
        self, seconds: float, *, is_grace: bool = False
    ) -> AsyncIterator[asyncio.Timeout]:
        """Bound one shutdown step so that a forced shutdown can cut it short (``_force``)."""
        if self._force_deadline is not None:
            seconds = 0.0 if is_grace else min(seconds, self._force_deadline.remaining())
        async with asyncio.timeout(seconds) as bound:
            self._step = _Step(bound, is_grace)
            try:
                yield bound
            finally:
                self._step = None

    def _request(self, reason: ShutdownReason, signal_name: str | None = None) -> bool:
        """Start the shutdown, unless it has started already. Returns whether this call did."""
        if self._reason is not None:
            return False
        self._reason = reason
        self._signal_name = signal_name
        self._shutdown.request(Deadline.after(self._grace))
        start_up = self._start_up
        _log.info(
            "shutdown requested" if start_up is None else "shutdown requested during start-up",
            extra={"reason": reason.value, "signal_name": signal_name, "grace_s": self._grace},
        )
        if start_up is not None:
            start_up.cancel()
        return True

    def _force(self, cause: str) -> None:
        if self._force_deadline is not None:
            return
        self._force_deadline = deadline = Deadline.after(self._force_budget)
        self._shutdown.expire()
        _log.warning(
            "forcing shutdown", extra={"cause": cause, "force_budget_s": self._force_budget}
        )
        if self._start_up is not None:
            # Interrupts the clean-up that the first cancellation started, if it hangs.
            self._start_up.cancel()
        step = self._step
        if step is None or step.bound.expired():
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + (0.0 if step.is_grace else deadline.remaining())
        current = step.bound.when()
        if current is None or when < current:
            step.bound.reschedule(when)

    def _on_signal(self, sig: signal.Signals) -> None:
        now = time.monotonic()
        if self._request(ShutdownReason.SIGNAL, sig.name):
            self._first_signal = (sig, now)
            return
        previous = self._first_signal
        # A SIGTERM to a process group reaches us once per process that forwards it (`uv run`,
        # a shell wrapper, systemd's KillMode=control-group): a repeat is the same request.
        # `uv run` without a TTY also forwards a group's SIGINT, 200 ms after the original.
        echo = previous is not None and previous[0] is sig and now - previous[1] < _SIGINT_ECHO
        if sig is not signal.SIGINT or echo:
            _log.info(
                "signal ignored, shutdown already in progress",
                extra={"signal_name": sig.name},
            )
            return
        self._force(f"second signal {sig.name}")

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        """Install the handlers, unless ``start_up()`` already did."""
        if self._handlers is not None:
            return
        installed: list[tuple[signal.Signals, _Handler]] = []
        for sig in self._signals:
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (ValueError, RuntimeError, NotImplementedError) as exc:
                _restore_signal_handlers(loop, installed)
                raise SignalsUnavailableError(sig.name, str(exc)) from exc
            installed.append((sig, previous))
        self._handlers = installed

    def _remove_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        installed, self._handlers = self._handlers, None
        if installed is not None:
            _restore_signal_handlers(loop, installed)

    def _check_not_started(self) -> None:
        if self._started:
            raise AlreadyStartedError("this runner has already been started")


def _restore_signal_handlers(
    loop: asyncio.AbstractEventLoop, installed: list[tuple[signal.Signals, _Handler]]
) -> None:
    for sig, previous in reversed(installed):
        loop.remove_signal_handler(sig)
        # remove_signal_handler resets to the default; put back whatever was there before run().
        if previous is not None:
            signal.signal(sig, previous)


async def _call(start: Callable[[], Awaitable[T]]) -> T:
    return await start()


def _cancel_requested() -> bool:
    """Whether ``cancel()`` was called on the current task, rather than CancelledError raised."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _check_seconds(name: str, value: float, *, allow_zero: bool) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
