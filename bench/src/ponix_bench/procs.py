"""Contender processes: start with a clean environment, read their memory, stop and time them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Variables a contender must not inherit from the shell that runs the bench: the bench sets
# exactly what each contender reads (a NATS_URL exported for `ponix run` must not leak in).
_SCRUBBED_PREFIXES = ("NATS_", "CLICKHOUSE_", "INGESTER_", "PONIX_", "HTTP_", "LOG_")


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_SCRUBBED_PREFIXES)}
    env.update(extra)
    return env


def _status_kib(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (Linux ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                kids = (task / "children").read_text(encoding="ascii").split()
            except OSError:
                continue
            for kid in map(int, kids):
                found.append(kid)
                todo.append(kid)
    return found


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int], *, children: bool | None = None) -> float:
    """User + system CPU seconds used so far by ``pids`` and their live descendants
    (``children=False``: ``pids`` only; ``True``: only their descendants)."""
    total = 0
    every = [
        p
        for pid in pids
        for p in (
            ([pid] if children is not True else [])
            + (descendants(pid) if children is not False else [])
        )
    ]
    for one in every:
        try:
            text = Path(f"/proc/{one}/stat").read_text(encoding="ascii")
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


@dataclass(frozen=True, slots=True)
class LoopTimes:
    """Where the main threads of some processes (the event loops) spent their time so far, in
    seconds summed over the threads: ``on_core`` running, ``queued`` ready to run but waiting
    for a core (another process or thread had it). The rest of the wall time they slept:
    waiting for input, for a thread's result, or for the GIL."""

    on_core: float
    queued: float


def loop_times(pids: Sequence[int]) -> LoopTimes:
    """:class:`LoopTimes` of the main threads of ``pids`` (Linux
    ``/proc/<pid>/task/<pid>/schedstat``: nanoseconds on a core, nanoseconds on a run queue,
    timeslices). A thread that is gone counts nothing."""
    on_core = queued = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text(encoding="ascii")
        except OSError:
            continue
        ran, waited, _ = text.split()
        on_core += int(ran)
        queued += int(waited)
    return LoopTimes(on_core / 1e9, queued / 1e9)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far, over all cores (``/proc/stat``: every
    state but idle and iowait; steal counts as busy, since the time was not ours to use)."""
    try:
        first = Path("/proc/stat").read_text(encoding="ascii").split("\n", 1)[0]
    except OSError:
        return 0.0
    ticks = [int(v) for v in first.split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    # guest and guest_nice (fields 9 and 10) are already inside user and nice.
    return (sum(ticks[:8]) - idle) / _TICK


@dataclass(frozen=True, slots=True)
class Memory:
    """Memory of a contender: its largest process and the sum over all its processes (MiB)."""

    largest_mib: float
    total_mib: float
    processes: int


def memory(pids: Sequence[int], field: str = "VmHWM") -> Memory:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of ``pids`` and all their descendants."""
    every = [p for pid in pids for p in (pid, *descendants(pid))]
    sizes = [_status_kib(p, field) / 1024 for p in every]
    sizes = [s for s in sizes if s > 0]
    if not sizes:
        return Memory(0.0, 0.0, 0)
    return Memory(max(sizes), sum(sizes), len(sizes))


@dataclass
class Contender:
    """The processes of one contender and where their output goes."""

    name: str
    procs: list[asyncio.subprocess.Process]
    logs: list[Path]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def check_alive(self) -> None:
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.returncode is not None:
                tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
                msg = f"{self.name}: process {proc.pid} exited with {proc.returncode}:\n{tail}"
                raise RuntimeError(msg)

    async def stop(self, within: float = 15.0) -> tuple[float, list[int | None]]:
        """SIGTERM every process; seconds until the last one exited, and their exit codes."""
        started = time.monotonic()
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        waits = [asyncio.ensure_future(proc.wait()) for proc in self.procs]
        _, pending = await asyncio.wait(waits, timeout=within)
        elapsed = time.monotonic() - started
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if pending:
            await asyncio.wait(pending)
        return elapsed, [proc.returncode for proc in self.procs]


async def spawn(
    name: str, argvs: Sequence[Sequence[str]], env: Mapping[str, str], cwd: Path
) -> Contender:
    procs: list[asyncio.subprocess.Process] = []
    logs: list[Path] = []
    for index, argv in enumerate(argvs):
        log = cwd / f"{name}.{index}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=dict(env),
                cwd=cwd,
            )
        procs.append(proc)
        logs.append(log)
    return Contender(name, procs, logs)
