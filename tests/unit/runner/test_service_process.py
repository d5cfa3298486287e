"""A service built on the runner, run as a real child process under uvloop and signalled."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(15)

SERVICE = Path(__file__).with_name("scripted_service.py")


class Child:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    async def wait_for_line(self, expected: str, seconds: float = 5.0) -> None:
        assert self.proc.stdout is not None
        async with asyncio.timeout(seconds):
            while expected not in self.lines:
                raw = await self.proc.stdout.readline()
                if not raw:
                    pytest.fail(f"child exited before printing {expected!r}: {self.lines}")
                self.lines.append(raw.decode().rstrip("\n"))

    async def finish(self, seconds: float = 5.0) -> tuple[int, str]:
        async with asyncio.timeout(seconds):
            out, err = await self.proc.communicate()
        self.lines.extend(out.decode().splitlines())
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode()


@asynccontextmanager
async def service(scenario: str) -> AsyncIterator[Child]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVICE),
        scenario,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, so the tests can signal the group
    )
    try:
        yield Child(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()


async def test_sigterm_stops_a_uvloop_service_cleanly_with_exit_code_zero() -> None:
    async with service("clean") as child:
        await child.wait_for_line("ready")
        child.proc.send_signal(signal.SIGTERM)
        code, logs = await child.finish()

    assert code == 0, logs
    assert child.lines == [
        "loop uvloop",
        "ready",
        "token set",
        "closer flush",
        "closer drain",
        "reason signal forced False",
        "closers flush=ok drain=ok",
        "failures ",
    ]
    assert "shutdown requested" in logs


async def test_a_failing_process_gives_exit_code_one_and_closers_still_run() -> None:
    async with service("failing") as child:
        code, logs = await child.finish()

    assert code == 1, logs
    assert child.lines[-5:] == [
        "token set",
        "closer drain",
        "reason process_failed forced False",
        "closers drain=ok",
        "failures fails",
    ]
    assert "RuntimeError: clickhouse unreachable" in logs


async def test_a_second_signal_forces_a_fast_exit_with_code_130() -> None:
    async with service("forced") as child:
        await child.wait_for_line("ready")
        child.proc.send_signal(signal.SIGTERM)
        await child.wait_for_line("token set")
        forced_at = time.monotonic()
        child.proc.send_signal(signal.SIGINT)
        code, logs = await child.finish()
        took = time.monotonic() - forced_at

    # The grace period is 30 s and the hanging closer's timeout 30 s: only the force ends it.
    assert took < 3.0
    assert code == 130, logs
    assert child.lines[-4:] == [
        "closer hangs",
        "reason signal forced True",
        "closers hangs=timed_out late=skipped",
        "failures ",
    ]
    assert "forcing shutdown" in logs


async def test_sigterm_to_the_process_group_three_times_still_drains_and_exits_zero() -> None:
    async with service("draining") as child:
        await child.wait_for_line("ready")
        group = os.getpgid(child.proc.pid)
        os.killpg(group, signal.SIGTERM)
        await child.wait_for_line("token set")
        os.killpg(group, signal.SIGTERM)
        os.killpg(group, signal.SIGTERM)
        code, logs = await child.finish()

    assert code == 0, logs
    assert child.lines[-5:] == [
        "drained",
        "closer flush",
        "reason signal forced False",
        "closers flush=ok",
        "failures ",
    ]
    assert "forcing shutdown" not in logs
    # Two SIGTERMs pending at once are delivered as one (standard signals do not queue).
    assert logs.count("signal ignored, shutdown already in progress") >= 1
