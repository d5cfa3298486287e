"""The exit-code table: which code a run ends with, and which code wins when several apply."""

from __future__ import annotations

import pytest

from ponix_runner import (
    CloserOutcome,
    CloserStatus,
    ExitCode,
    ProcessFailure,
    RunResult,
    ShutdownReason,
)

FAILURE = ProcessFailure("ingest", RuntimeError("boom"), "raised RuntimeError: boom")


def result(
    *,
    reason: ShutdownReason = ShutdownReason.SIGNAL,
    failed: bool = False,
    forced: bool = False,
    closer: CloserStatus = CloserStatus.OK,
) -> RunResult:
    return RunResult(
        reason=reason,
        signal="SIGTERM" if reason is ShutdownReason.SIGNAL else None,
        failures=(FAILURE,) if failed else (),
        cancelled=(),
        closers=(CloserOutcome("flush", CloserStatus.OK, 0.01), CloserOutcome("db", closer, 0.2)),
        forced=forced,
    )


@pytest.mark.parametrize(
    ("run", "code"),
    [
        (result(), ExitCode.OK),
        (result(reason=ShutdownReason.REQUESTED), ExitCode.OK),
        (result(reason=ShutdownReason.ALL_DONE), ExitCode.OK),
        (result(reason=ShutdownReason.PROCESS_FAILED, failed=True), ExitCode.PROCESS_FAILED),
        (result(closer=CloserStatus.FAILED), ExitCode.CLOSER_FAILED),
        (result(closer=CloserStatus.TIMED_OUT), ExitCode.CLOSER_FAILED),
        (result(closer=CloserStatus.SKIPPED), ExitCode.CLOSER_FAILED),
        (result(forced=True), ExitCode.FORCED),
        (result(forced=True, closer=CloserStatus.SKIPPED), ExitCode.FORCED),
        (result(failed=True, forced=True, closer=CloserStatus.FAILED), ExitCode.PROCESS_FAILED),
    ],
    ids=[
        "signal",
        "requested",
        "all-done",
        "process-failed",
        "closer-failed",
        "closer-timed-out",
        "closer-skipped",
        "forced",
        "forced-beats-closer",
        "process-failure-beats-all",
    ],
)
def test_the_exit_code_tells_clean_from_failed_from_forced(run: RunResult, code: ExitCode) -> None:
    assert run.exit_code is code
    assert run.ok is (code is ExitCode.OK)


def test_exit_codes_are_the_documented_numbers() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "PROCESS_FAILED": 1,
        "FORCED": 130,
        "CLOSER_FAILED": 3,
        "OK": 0,
    }
