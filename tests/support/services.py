"""Ponix services as child processes of a test: started with a pipeline's environment, observed
through their JSON log lines (awaitable: ``wait_for_log``), ``/metrics``, signals and exit code.

``async with ServiceLauncher(tmp_path) as launch: ingester = await launch.start(pipeline)``
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, Self

from prometheus_client.parser import text_string_to_metric_families

from ponix_devstack import free_port
from tests.support.environment import Pipeline

__all__ = (
    "READY_EVENT",
    "SERVICE_MODULES",
    "Exit",
    "LogLine",
    "Metrics",
    "ServiceExitedError",
    "ServiceLauncher",
    "ServiceName",
    "ServiceProcess",
)

ServiceName = Literal["ingester", "all-in-one", "producer"]
SERVICE_MODULES: Final[Mapping[ServiceName, str]] = {
    "ingester": "ponix_ingester",
    "all-in-one": "ponix_all_in_one",
    "producer": "ponix_producer",
}
READY_EVENT: Final = "service started"
"""Logged by ``ponix_service.serve`` once start-up is done: migrations applied, stream and
consumer provisioned, processes about to run. Messages published after it are consumed."""

_READ_LIMIT: Final = 1 << 20
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a service wrote: parsed JSON when it is (``LOG_FORMAT=json``), else raw text."""

    text: str
    fields: Mapping[str, Any]

    @property
    def event(self) -> str:
        return str(self.fields.get("message", ""))

    @property
    def level(self) -> str:
        return str(self.fields.get("level", ""))

    def matches(self, event: str, fields: Mapping[str, object]) -> bool:
        return self.event == event and all(self.fields.get(k) == v for k, v in fields.items())


@dataclass(frozen=True, slots=True)
class Exit:
    """How a service ended: its exit code (negative: killed by that signal) and how long it took
    from the signal we sent (0.0 when it had already exited)."""

    code: int
    seconds: float
    forced: bool = False
    """True when it ignored SIGTERM past the timeout and was SIGKILLed."""


class ServiceExitedError(AssertionError):
    """The service exited while the test waited for something from it."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """One scrape of a service's ``/metrics``."""

    samples: tuple[tuple[str, Mapping[str, str], float], ...]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        return cls(
            tuple(
                (sample.name, dict(sample.labels), float(sample.value))
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` (counters: ``ponix_envelopes_acked_total``) whose
        labels include ``labels``; 0.0 when there are none."""
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )


class ServiceProcess:
    """A Ponix service running as a child process (``python -m ponix_<service>``).

    stdout and stderr go to ``log_path`` and to :attr:`lines`; ``/metrics`` is served on
    :attr:`http_port`. Use it through :class:`ServiceLauncher`, which also cleans up.
    """

    def __init__(
        self,
        name: str,
        service: ServiceName,
        env: Mapping[str, str],
        *,
        workdir: Path,
        http_port: int,
    ) -> None:
        self.name = name
        self.service = service
        self.env = dict(env)
        self.workdir = workdir
        self.http_port = http_port
        self.log_path = workdir / f"{name}.log"
        self.lines: list[LogLine] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._eof = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def spawn(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # cwd is the test's own directory: no stray .env file is read by the service.
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            SERVICE_MODULES[self.service],
            env=self.env,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=_READ_LIMIT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        self._reader = asyncio.create_task(self._read(self._proc.stdout))
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running."""
        return self._process.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def wait_ready(self, *, within: float = 30.0, event: str = READY_EVENT) -> LogLine:
        """Wait for the service's ready log line (see :data:`READY_EVENT`)."""
        return await self.wait_for_log(event, within=within)

    async def terminate(self, *, kill_after: float = 10.0) -> Exit:
        """SIGTERM, then wait up to ``kill_after`` seconds; SIGKILL after that (``forced``)."""
        return await self._stop(signal.SIGTERM, kill_after)

    async def kill(self) -> Exit:
        """SIGKILL: no closer runs, nothing in flight is acked (a crash)."""
        return await self._stop(signal.SIGKILL, 10.0)

    async def wait(self, *, within: float) -> Exit:
        """Wait for the service to exit by itself."""
        started = time.monotonic()
        async with asyncio.timeout(within):
            code = await self._process.wait()
        await self._finish_reading()
        return Exit(code, time.monotonic() - started)

    async def close(self) -> None:
        """Kill it if still running and release the pipes; idempotent."""
        if self._proc is None:
            return
        if self._proc.returncode is None:
            await self.kill()
        await self._finish_reading()

    async def _stop(self, sig: signal.Signals, kill_after: float) -> Exit:
        proc = self._process
        if proc.returncode is not None:
            await self._finish_reading()
            return Exit(proc.returncode, 0.0)
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        forced = False
        try:
            async with asyncio.timeout(kill_after):
                code = await proc.wait()
        except TimeoutError:
            forced = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        seconds = time.monotonic() - started
        await self._finish_reading()
        return Exit(code, seconds, forced)

    # -- logs -----------------------------------------------------------------------------------

    def events(self, event: str, **fields: object) -> list[LogLine]:
        """The log lines so far whose ``event`` is ``event`` and whose fields include ``fields``."""
        return [line for line in self.lines if line.matches(event, fields)]

    async def wait_for_log(
        self, event: str, *, within: float, count: int = 1, **fields: object
    ) -> LogLine:
        """Wait until ``count`` lines match (see :meth:`events`); return the last of them.

        Raises :class:`ServiceExitedError` (with the log tail) if the service exits first.
        """

        def found() -> bool:
            return len(self.events(event, **fields)) >= count or self._eof

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(found)
        except TimeoutError:
            msg = f"{self.name}: no {event!r} log line within {within:g}s\n{self.tail()}"
            raise AssertionError(msg) from None
        matching = self.events(event, **fields)
        if len(matching) < count:
            await self._process.wait()
            msg = (
                f"{self.name} exited with {self.returncode} before logging {event!r}\n{self.tail()}"
            )
            raise ServiceExitedError(msg)
        return matching[-1]

    def tail(self, lines: int = 30) -> str:
        return "\n".join(line.text for line in self.lines[-lines:])

    async def _read(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        with self._open_log() as log:
            while True:
                raw = await stream.readline()
                if not raw:
                    break
                text = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(text + "\n")
                log.flush()
                async with self._changed:
                    self.lines.append(LogLine(text, _json_fields(text)))
                    self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _open_log(self) -> IO[str]:
        return self.log_path.open("a", encoding="utf-8")

    async def _finish_reading(self) -> None:
        if self._reader is not None:
            await self._reader

    # -- metrics --------------------------------------------------------------------------------

    async def metrics(self) -> Metrics:
        """Scrape ``/metrics`` now (the service must be running)."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode("utf-8"))

        return Metrics.parse(await asyncio.to_thread(scrape))

    @property
    def _process(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            msg = f"{self.name} was never spawned"
            raise RuntimeError(msg)
        return self._proc

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        code = self._proc.returncode if self._proc is not None else None
        return f"ServiceProcess({self.name!r}, pid={pid}, returncode={code})"


class ServiceLauncher:
    """Starts services for one test and stops every one of them when the block ends.

    ``async with ServiceLauncher(tmp_path) as launch: ingester = await launch.start(pipeline)``
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[ServiceProcess] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(
        self,
        pipeline: Pipeline,
        *,
        service: ServiceName = "ingester",
        name: str | None = None,
        ready: bool = True,
        within: float = 30.0,
        **env: object,
    ) -> ServiceProcess:
        """Spawn ``service`` with ``pipeline``'s environment plus ``env`` (e.g.
        ``PONIX_PROCESSES="ingester"`` for the all-in-one), on a free ``HTTP_PORT``.

        With ``ready`` (default), returns once it logged :data:`READY_EVENT`.
        """
        name = name or f"{service}-{len(self.started) + 1}"
        port = free_port()
        process = ServiceProcess(
            name,
            service,
            pipeline.process_env(HTTP_HOST="127.0.0.1", HTTP_PORT=port, **env),
            workdir=self.workdir / "services",
            http_port=port,
        )
        self.started.append(process)
        await process.spawn()
        if ready:
            await process.wait_ready(within=within)
        return process

    async def close(self) -> None:
        for process in reversed(self.started):
            await process.close()


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn: SIGKILL the service if pytest dies, so no ingester outlives its run."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _json_fields(text: str) -> Mapping[str, Any]:
    if not text.startswith("{"):
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
