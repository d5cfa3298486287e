"""The runner on uvloop, in this process: a real SIGTERM, and ``run_main``'s exit codes."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import uvloop

from ponix_runner import ExitCode, Runner, RunResult, ShutdownReason, ShutdownToken, run_main

pytestmark = pytest.mark.timeout(10)


def test_the_runner_handles_a_real_sigterm_under_uvloop() -> None:
    loops: list[str] = []

    async def main() -> RunResult:
        loops.append(type(asyncio.get_running_loop()).__module__)
        runner = Runner(grace=1.0)

        async def worker(token: ShutdownToken) -> None:
            os.kill(os.getpid(), signal.SIGTERM)
            await token.wait()

        runner.add_process("worker", worker)
        async with asyncio.timeout(5):
            return await runner.run()

    before = signal.getsignal(signal.SIGTERM)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as loop_runner:
        result = loop_runner.run(main())

    assert loops == ["uvloop"]
    assert result.reason is ShutdownReason.SIGNAL
    assert result.signal == "SIGTERM"
    assert result.exit_code == ExitCode.OK
    assert signal.getsignal(signal.SIGTERM) == before


def test_run_main_runs_on_uvloop_and_returns_the_results_exit_code() -> None:
    loops: list[str] = []

    async def main() -> RunResult:
        loops.append(type(asyncio.get_running_loop()).__module__)
        runner = Runner()

        async def fails(token: ShutdownToken) -> None:
            raise RuntimeError("nats unreachable")

        runner.add_process("fails", fails)
        return await runner.run()

    assert run_main(main) == 1
    assert loops == ["uvloop"]


@pytest.mark.parametrize(("returned", "code"), [(None, 0), (0, 0), (4, 4)])
def test_run_main_passes_plain_exit_codes_through(returned: int | None, code: int) -> None:
    async def main() -> int | None:
        return returned

    assert run_main(main, use_uvloop=True) == code


class _UserMistakeError(Exception):
    code = "config.invalid"


def test_an_error_with_a_code_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        raise _UserMistakeError("config.invalid: NATS_URL='x': not a nats:// URL")

    assert run_main(main) == 1
    err = capsys.readouterr().err
    assert err == "error: config.invalid: NATS_URL='x': not a nats:// URL\n"


def test_a_bug_keeps_its_traceback() -> None:
    async def main() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_main(main)
