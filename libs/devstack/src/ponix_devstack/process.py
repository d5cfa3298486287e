"""One server child process: spawn, readiness wait, stop, kill, pause, and its log tail."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from ponix_devstack.errors import ServerStartFailedError

_PR_SET_PDEATHSIG = 1
_TAIL_BYTES = 8192
_TAIL_LINES = 40
# How long atexit gives each still-running child to exit cleanly before SIGKILL.
_ATEXIT_STOP_SECONDS = 5.0


def _load_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]
    prctl.restype = ctypes.c_int

    def call(option: int, arg: int) -> int:
        return int(prctl(option, arg))

    return call


# Resolved in the parent: the child between fork and exec should only make the one syscall.
_prctl = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent goes away.

    SIGTERM rather than SIGKILL: both servers shut down cleanly on it, so a test run killed by a
    timeout leaves a NATS store and a ClickHouse data dir that the next start accepts.
    """
    if _prctl is None:
        return None
    prctl = _prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died between fork and prctl; then no signal will ever come.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


# Strong references: a server whose Python object was dropped must still be stopped at exit.
_live: set[ServerProcess] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        # One server failing to stop must not keep the others running.
        with contextlib.suppress(Exception):
            proc.terminate(_ATEXIT_STOP_SECONDS)


class ServerProcess:
    """A child server whose stdout and stderr go to ``log_path``; not a public type.

    The child runs in its own session, so a Ctrl-C in the terminal reaches only the parent, which
    then stops its servers in order. On Linux the child also gets SIGTERM if the thread that
    spawned it dies (PR_SET_PDEATHSIG): spawn from the main thread or a long-lived one.
    """

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._extra_logs: dict[Path, int] = {}
        self._paused = False
        self._spawned_argv: tuple[str, ...] = ()

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def paused(self) -> bool:
        return self.running and self._paused

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        extra_logs: Sequence[Path] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """Start ``argv``; ``extra_logs`` are files the server writes itself, tailed on failure."""
        if self.running:
            msg = f"{self.name} is already running (pid {self.pid})"
            raise RuntimeError(msg)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = _size(self.log_path)
        self._extra_logs = {path: _size(path) for path in extra_logs}
        self._paused = False
        self._spawned_argv = tuple(argv)
        log: IO[bytes]
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
                close_fds=True,
            )
        with _live_lock:
            _live.add(self)

    def exit_code(self) -> int | None:
        """The exit code once the process has ended, ``None`` while it runs or before spawn."""
        return self._popen.poll() if self._popen is not None else None

    def check_alive(self) -> None:
        """Raise :class:`ServerStartFailedError` (with the log tail) if the process has exited."""
        code = self.exit_code()
        if code is not None:
            raise ServerStartFailedError(self.name, code, self.log_tail(), self._argv())
        if self._popen is None:
            msg = f"{self.name} was never spawned"
            raise RuntimeError(msg)

    def terminate(self, timeout: float) -> int | None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is not None:
            self._forget()
            return popen.returncode
        # A stopped process only acts on SIGTERM after SIGCONT.
        self._signal(signal.SIGCONT)
        self._paused = False
        self._signal(signal.SIGTERM)
        try:
            code = popen.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return self.kill()
        self._forget()
        return code

    def kill(self) -> int | None:
        """SIGKILL and reap; returns the exit code (``-9`` after a kill)."""
        popen = self._popen
        if popen is None:
            return None
        if popen.poll() is None:
            self._signal(signal.SIGKILL)
        self._paused = False
        code = popen.wait()
        self._forget()
        return code

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets open but answers nothing, like a hung host."""
        if not self.running:
            msg = f"{self.name} is not running"
            raise RuntimeError(msg)
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self.running:
            self._signal(signal.SIGCONT)
        self._paused = False

    def log_tail(self) -> str:
        """What the server logged since the last spawn: its own log files, then stdout/stderr."""
        parts = [_tail(path, offset) for path, offset in self._extra_logs.items()]
        parts.append(_tail(self.log_path, self._log_offset))
        return "\n".join(part for part in parts if part)

    def _argv(self) -> Sequence[str]:
        return self._spawned_argv

    def _forget(self) -> None:
        with _live_lock:
            _live.discard(self)

    def _signal(self, signum: signal.Signals) -> None:
        popen = self._popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signum)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, offset: int) -> str:
    """The last lines ``path`` gained after ``offset`` (the file may have been rotated since)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = offset if size >= offset else 0
            start = max(start, size - _TAIL_BYTES)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_TAIL_LINES:]).strip()


class ManagedServer:
    """What every server child shares: stop, kill, restart, pause, resume, logs, ``with``.

    Subclasses set ``self._process`` and ``self.stop_timeout`` and implement :meth:`start`.
    """

    _process: ServerProcess
    stop_timeout: float

    def start(self) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process.running

    @property
    def is_paused(self) -> bool:
        return self._process.paused

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, wait up to ``timeout`` (default :attr:`stop_timeout`), then SIGKILL."""
        self._process.terminate(self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would; the store keeps every write acknowledged before it."""
        self._process.kill()

    def restart(self) -> Self:
        self.stop()
        return self.start()

    def pause(self) -> None:
        """SIGSTOP: connections stay open but the server answers nothing until :meth:`resume`."""
        self._process.pause()

    def resume(self) -> None:
        self._process.resume()

    def log_tail(self) -> str:
        """What the server logged since its last start."""
        return self._process.log_tail()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
