"""The runner's semantics, driven by real signals that this test process sends to itself.

A process sends the signal only once it is running, so the runner's handlers are already
installed and the signal can never reach the default handler (which would end pytest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any

import pytest

from ponix_runner import (
    AlreadyStartedError,
    CloserFn,
    CloserStatus,
    Deadline,
    DuplicateNameError,
    ExitCode,
    Runner,
    RunResult,
    ShutdownReason,
    ShutdownToken,
    SignalsUnavailableError,
)

pytestmark = pytest.mark.timeout(10)

HANDLED = (signal.SIGINT, signal.SIGTERM)
# Timers may fire a little before a monotonic deadline; bounds allow for that much.
SLACK = 0.05


def send(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)


async def forever() -> None:
    await asyncio.Event().wait()


async def run_within(runner: Runner, seconds: float = 5.0) -> RunResult:
    async with asyncio.timeout(seconds):
        return await runner.run()


@pytest.mark.parametrize("sig", HANDLED, ids=lambda sig: sig.name)
async def test_a_real_signal_stops_cooperative_processes_and_exits_clean(
    sig: signal.Signals,
) -> None:
    runner = Runner(grace=2.0)
    stopped: list[str] = []
    closed: list[str] = []

    async def worker(token: ShutdownToken) -> None:
        await token.wait()
        stopped.append("worker")

    async def sender(token: ShutdownToken) -> None:
        send(sig)
        await token.wait()
        stopped.append("sender")

    async def close() -> None:
        closed.append("nats")

    runner.add_process("worker", worker)
    runner.add_process("sender", sender)
    runner.add_closer("nats", close)

    result = await run_within(runner)

    assert result.reason is ShutdownReason.SIGNAL
    assert result.signal == sig.name
    assert sorted(stopped) == ["sender", "worker"]
    assert closed == ["nats"]
    assert result.failures == ()
    assert result.cancelled == ()
    assert [closer.status for closer in result.closers] == [CloserStatus.OK]
    assert not result.forced
    assert result.exit_code is ExitCode.OK


async def test_signal_handlers_are_removed_and_the_previous_ones_restored_after_run() -> None:
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    during: dict[signal.Signals, object] = {}
    runner = Runner()

    async def look(token: ShutdownToken) -> None:
        during.update({sig: signal.getsignal(sig) for sig in HANDLED})
        runner.shutdown()

    runner.add_process("look", look)
    await run_within(runner)

    assert all(during[sig] is not before[sig] for sig in HANDLED)
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


async def test_a_failing_process_sets_the_token_for_the_others_then_cancels_stragglers() -> None:
    runner = Runner(grace=0.2)
    boom = ValueError("boom")
    events: list[str] = []
    cooperative_ready, stubborn_ready = asyncio.Event(), asyncio.Event()

    async def cooperative(token: ShutdownToken) -> None:
        cooperative_ready.set()
        await token.wait()
        events.append("cooperative saw the token")

    async def stubborn(token: ShutdownToken) -> None:
        stubborn_ready.set()
        try:
            await forever()
        except asyncio.CancelledError:
            events.append("stubborn cancelled")
            raise

    async def failing(token: ShutdownToken) -> None:
        await cooperative_ready.wait()
        await stubborn_ready.wait()
        raise boom

    runner.add_process("cooperative", cooperative)
    runner.add_process("stubborn", stubborn)
    runner.add_process("failing", failing)

    result = await run_within(runner)

    assert result.reason is ShutdownReason.PROCESS_FAILED
    assert [failure.name for failure in result.failures] == ["failing"]
    assert result.failures[0].error is boom
    assert result.failures[0].message == "raised ValueError: boom"
    assert events == ["cooperative saw the token", "stubborn cancelled"]
    assert result.cancelled == ("stubborn",)
    assert result.exit_code is ExitCode.PROCESS_FAILED


async def test_a_process_returning_before_shutdown_stops_the_run_as_a_failure() -> None:
    runner = Runner(grace=1.0)
    saw_token: list[bool] = []

    async def quits(token: ShutdownToken) -> None:
        return

    async def worker(token: ShutdownToken) -> None:
        await token.wait()
        saw_token.append(True)

    runner.add_process("worker", worker)
    runner.add_process("quits", quits)

    result = await run_within(runner)

    assert result.reason is ShutdownReason.PROCESS_RETURNED
    assert [(f.name, f.error, f.message) for f in result.failures] == [
        ("quits", None, "returned before shutdown was requested")
    ]
    assert saw_token == [True]
    assert result.exit_code is ExitCode.PROCESS_FAILED


async def test_a_may_return_process_can_finish_while_the_others_keep_running() -> None:
    runner = Runner(grace=1.0)
    published = asyncio.Event()
    token_set_after_producer_returned: list[bool] = []

    async def producer(token: ShutdownToken) -> None:
        published.set()

    async def consumer(token: ShutdownToken) -> None:
        await published.wait()
        # The producer returned in the same step that set the event, so the runner has
        # already judged that return by the time this process resumes.
        token_set_after_producer_returned.append(token.is_set)
        send(signal.SIGTERM)
        await token.wait()

    runner.add_process("producer", producer, may_return=True)
    runner.add_process("consumer", consumer)

    result = await run_within(runner)

    assert token_set_after_producer_returned == [False]
    assert result.reason is ShutdownReason.SIGNAL
    assert result.failures == ()
    assert result.exit_code is ExitCode.OK


async def test_the_run_ends_cleanly_once_every_may_return_process_has_finished() -> None:
    runner = Runner()
    closed: list[str] = []

    async def publish(token: ShutdownToken) -> None:
        return

    async def close() -> None:
        closed.append("nats")

    runner.add_process("publish-a", publish, may_return=True)
    runner.add_process("publish-b", publish, may_return=True)
    runner.add_closer("nats", close)

    result = await run_within(runner)

    assert result.reason is ShutdownReason.ALL_DONE
    assert closed == ["nats"]
    assert result.exit_code is ExitCode.OK


async def test_a_runner_without_processes_goes_straight_to_its_closers() -> None:
    runner = Runner()
    closed: list[str] = []

    async def close() -> None:
        closed.append("db")

    runner.add_closer("db", close)
    result = await run_within(runner)

    assert result.reason is ShutdownReason.ALL_DONE
    assert closed == ["db"]


async def test_a_non_critical_process_failure_is_recorded_without_stopping_the_others() -> None:
    runner = Runner(grace=1.0)
    metrics_started = asyncio.Event()
    token_set_after_metrics_failed: list[bool] = []

    async def metrics(token: ShutdownToken) -> None:
        metrics_started.set()
        raise OSError("address in use")

    async def worker(token: ShutdownToken) -> None:
        await metrics_started.wait()
        token_set_after_metrics_failed.append(token.is_set)
        send(signal.SIGTERM)
        await token.wait()

    runner.add_process("metrics", metrics, critical=False)
    runner.add_process("worker", worker)

    result = await run_within(runner)

    assert token_set_after_metrics_failed == [False]
    assert result.reason is ShutdownReason.SIGNAL
    assert [failure.name for failure in result.failures] == ["metrics"]
    assert result.exit_code is ExitCode.PROCESS_FAILED


async def test_a_process_ignoring_the_token_is_cancelled_once_the_grace_period_ends() -> None:
    grace = 0.3
    runner = Runner(grace=grace)
    requested_at: list[float] = []
    cancelled_at: list[float] = []

    async def stubborn(token: ShutdownToken) -> None:
        try:
            await forever()
        except asyncio.CancelledError:
            cancelled_at.append(time.monotonic())
            raise

    async def requester(token: ShutdownToken) -> None:
        requested_at.append(time.monotonic())
        runner.shutdown()

    runner.add_process("stubborn", stubborn)
    runner.add_process("requester", requester)

    result = await run_within(runner)

    waited = cancelled_at[0] - requested_at[0]
    assert grace - SLACK <= waited < grace + 1.0
    assert result.reason is ShutdownReason.REQUESTED
    assert result.cancelled == ("stubborn",)
    assert result.failures == ()
    assert result.exit_code is ExitCode.OK


async def test_a_process_that_swallows_cancellation_is_reported_and_closers_still_run() -> None:
    runner = Runner(grace=0.05, cancel_timeout=0.1)
    release = asyncio.Event()
    closed: list[str] = []

    async def swallows(token: ShutdownToken) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await forever()
        await release.wait()

    async def requester(token: ShutdownToken) -> None:
        runner.shutdown()

    async def close() -> None:
        closed.append("db")

    runner.add_process("swallows", swallows)
    runner.add_process("requester", requester)
    runner.add_closer("db", close)

    try:
        result = await run_within(runner)
    finally:
        release.set()
        (left_behind,) = [t for t in asyncio.all_tasks() if t.get_name() == "ponix-runner:swallows"]
        async with asyncio.timeout(5):
            await left_behind

    assert [(f.name, f.message) for f in result.failures] == [
        ("swallows", "would not stop after it was cancelled")
    ]
    assert closed == ["db"]
    assert result.exit_code is ExitCode.PROCESS_FAILED


async def test_a_closer_that_overruns_its_timeout_is_stopped_and_the_next_one_runs() -> None:
    runner = Runner()
    timeout = 0.2
    closed: list[str] = []

    async def after() -> None:
        closed.append("after")

    runner.add_closer("hangs", forever, timeout=timeout)
    runner.add_closer("after", after)
    runner.shutdown()

    result = await run_within(runner)

    hangs, after_outcome = result.closers
    assert hangs.status is CloserStatus.TIMED_OUT
    assert timeout - SLACK <= hangs.elapsed < timeout + 1.0
    assert after_outcome.status is CloserStatus.OK
    assert closed == ["after"]
    assert result.exit_code is ExitCode.CLOSER_FAILED


async def test_closers_run_in_registration_order_after_a_process_fails() -> None:
    runner = Runner()
    order: list[str] = []
    flush_error = RuntimeError("clickhouse unreachable")

    async def fails(token: ShutdownToken) -> None:
        raise KeyError("bad config")

    def closer(name: str, error: Exception | None = None) -> CloserFn:
        async def close() -> None:
            order.append(name)
            if error is not None:
                raise error

        return close

    runner.add_process("fails", fails)
    runner.add_closer("flush", closer("flush"))
    runner.add_closer("ack", closer("ack", flush_error))
    runner.add_closer("drain", closer("drain"))
    runner.add_closer("close", closer("close"))

    result = await run_within(runner)

    assert order == ["flush", "ack", "drain", "close"]
    assert [(c.name, c.status) for c in result.closers] == [
        ("flush", CloserStatus.OK),
        ("ack", CloserStatus.FAILED),
        ("drain", CloserStatus.OK),
        ("close", CloserStatus.OK),
    ]
    assert result.closers[1].error is flush_error
    assert result.exit_code is ExitCode.PROCESS_FAILED


async def test_a_failing_closer_is_logged_with_structured_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="ponix_runner")
    runner = Runner()
    error = RuntimeError("drain failed")

    async def drain() -> None:
        raise error

    runner.add_closer("drain", drain, timeout=2.0)
    runner.shutdown()
    await run_within(runner)

    (record,) = [r for r in caplog.records if r.getMessage() == "closer failed"]
    assert record.levelno == logging.ERROR
    assert record.__dict__["closer"] == "drain"
    assert record.__dict__["timeout_s"] == 2.0
    assert record.exc_info is not None
    assert record.exc_info[1] is error
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "shutdown requested"
    assert messages[-1] == "runner stopped"


async def test_closers_still_run_when_run_itself_is_cancelled() -> None:
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    runner = Runner(grace=1.0)
    started = asyncio.Event()
    events: list[str] = []

    async def worker(token: ShutdownToken) -> None:
        started.set()
        await token.wait()
        events.append("worker saw the token")

    async def close() -> None:
        events.append("closer ran")

    runner.add_process("worker", worker)
    runner.add_closer("db", close)

    run_task = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        await started.wait()
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await run_task

    assert events == ["worker saw the token", "closer ran"]
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


async def test_cancelling_run_a_second_time_forces_the_cleanup() -> None:
    runner = Runner(grace=30.0, force_budget=0.2)
    started, token_seen = asyncio.Event(), asyncio.Event()
    closed: list[str] = []

    async def watcher(token: ShutdownToken) -> None:
        started.set()
        await token.wait()
        token_seen.set()

    async def close() -> None:
        closed.append("db")

    runner.add_process("stubborn", lambda token: forever())
    runner.add_process("watcher", watcher)
    runner.add_closer("db", close)

    run_task = asyncio.create_task(runner.run())
    async with asyncio.timeout(5):
        await started.wait()
        run_task.cancel()
        await token_seen.wait()
    forced_at = time.monotonic()
    run_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):
            await run_task

    # The grace period is 30 s: only the second cancellation ends the run this soon.
    assert time.monotonic() - forced_at < 1.0
    assert closed == ["db"]


async def test_an_outer_timeout_around_run_still_surfaces_as_timeout_error() -> None:
    runner = Runner(grace=0.05)
    closed: list[str] = []

    async def close() -> None:
        closed.append("db")

    runner.add_process("runs", lambda token: forever())
    runner.add_closer("db", close)

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await runner.run()
    assert closed == ["db"]


async def test_shutdown_before_start_is_idempotent_and_runs_only_the_closers() -> None:
    runner = Runner()
    started: list[str] = []
    closed: list[str] = []

    async def worker(token: ShutdownToken) -> None:
        started.append("worker")

    async def close() -> None:
        closed.append("db")

    runner.add_process("worker", worker)
    runner.add_closer("db", close)
    runner.shutdown()
    runner.shutdown()

    result = await run_within(runner)

    assert started == []
    assert closed == ["db"]
    assert result.reason is ShutdownReason.REQUESTED
    assert not result.forced
    assert result.exit_code is ExitCode.OK


async def test_repeated_shutdown_calls_during_a_run_do_not_force_it() -> None:
    runner = Runner(grace=1.0)

    async def worker(token: ShutdownToken) -> None:
        for _ in range(3):
            runner.shutdown()
        await token.wait()

    runner.add_process("worker", worker)
    result = await run_within(runner)

    assert result.reason is ShutdownReason.REQUESTED
    assert not result.forced
    assert result.exit_code is ExitCode.OK


async def test_a_repeated_sigterm_during_the_grace_period_is_the_same_request() -> None:
    runner = Runner(grace=5.0, force_budget=0.2)
    drained: list[str] = []

    async def draining(token: ShutdownToken) -> None:
        send(signal.SIGTERM)
        await token.wait()
        # What a process group's SIGTERM looks like behind `uv run` or a shell wrapper.
        send(signal.SIGTERM)
        send(signal.SIGTERM)
        await asyncio.sleep(0.3)  # the drain: longer than the force budget
        drained.append("draining")

    async def close() -> None:
        drained.append("closer")

    runner.add_process("draining", draining)
    runner.add_closer("flush", close)
    result = await run_within(runner)

    assert drained == ["draining", "closer"]
    assert result.signal == "SIGTERM"
    assert result.cancelled == ()
    assert not result.forced
    assert result.exit_code is ExitCode.OK


async def test_a_sigint_forwarded_right_after_the_first_does_not_force() -> None:
    runner = Runner(grace=5.0, force_budget=0.2)

    async def draining(token: ShutdownToken) -> None:
        send(signal.SIGINT)
        await token.wait()
        send(signal.SIGINT)  # `uv run` without a TTY forwards a group's SIGINT 200 ms later
        await asyncio.sleep(0.3)

    runner.add_process("draining", draining)
    result = await run_within(runner)

    assert result.cancelled == ()
    assert not result.forced
    assert result.exit_code is ExitCode.OK


async def test_ctrl_c_twice_forces() -> None:
    runner = Runner(grace=30.0, force_budget=0.2)

    async def operator(token: ShutdownToken) -> None:
        send(signal.SIGINT)
        await token.wait()
        await asyncio.sleep(0.6)  # a person's second Ctrl-C, past the forwarded-copy window
        send(signal.SIGINT)
        await forever()

    runner.add_process("operator", operator)
    started = time.monotonic()
    result = await run_within(runner)

    assert time.monotonic() - started < 2.0
    assert result.forced
    assert result.cancelled == ("operator",)
    assert result.exit_code is ExitCode.FORCED


async def test_a_second_signal_skips_the_grace_period_and_cuts_the_closers_short() -> None:
    force_budget = 0.3
    runner = Runner(grace=30.0, force_budget=force_budget)
    late: list[str] = []

    async def stubborn(token: ShutdownToken) -> None:
        await forever()

    async def operator(token: ShutdownToken) -> None:
        send(signal.SIGTERM)
        await token.wait()
        send(signal.SIGINT)

    async def after() -> None:
        late.append("after")

    runner.add_process("stubborn", stubborn)
    runner.add_process("operator", operator)
    runner.add_closer("hangs", forever, timeout=30.0)
    runner.add_closer("after", after)

    started = time.monotonic()
    result = await run_within(runner)
    elapsed = time.monotonic() - started

    assert elapsed < force_budget + 1.0
    assert result.forced
    assert result.signal == "SIGTERM"
    assert result.cancelled == ("stubborn",)
    assert [(c.name, c.status) for c in result.closers] == [
        ("hangs", CloserStatus.TIMED_OUT),
        ("after", CloserStatus.SKIPPED),
    ]
    assert late == []
    assert result.exit_code is ExitCode.FORCED


async def test_the_token_reports_the_grace_left_and_wakes_sleepers_on_shutdown() -> None:
    runner = Runner(grace=2.0)
    seen: list[object] = []

    async def periodic(token: ShutdownToken) -> None:
        seen.extend([token.remaining(), token.deadline, await token.sleep(0.01)])
        runner.shutdown()
        seen.append(await token.sleep(30.0))
        remaining = token.remaining()
        assert remaining is not None
        seen.append(0 < remaining <= 2.0)

    runner.add_process("periodic", periodic)
    result = await run_within(runner)

    assert seen == [None, None, False, True, True]
    assert result.exit_code is ExitCode.OK


def test_a_deadline_counts_down_and_never_goes_below_zero() -> None:
    assert Deadline.after(-1.0).expired()
    assert Deadline.after(-1.0).remaining() == 0.0
    ahead = Deadline.after(60.0)
    assert not ahead.expired()
    assert 59.0 < ahead.remaining() <= 60.0


async def test_a_runner_runs_only_once_and_accepts_nothing_after_it_started() -> None:
    runner = Runner()
    runner.shutdown()
    await run_within(runner)

    with pytest.raises(AlreadyStartedError):
        await runner.run()
    with pytest.raises(AlreadyStartedError):
        runner.add_process("late", lambda token: forever())
    with pytest.raises(AlreadyStartedError):
        runner.add_closer("late", forever)


def test_names_are_unique_per_kind() -> None:
    runner = Runner()
    runner.add_process("ingest", lambda token: forever())
    runner.add_closer("ingest", forever)

    with pytest.raises(DuplicateNameError) as caught:
        runner.add_process("ingest", lambda token: forever())
    assert (caught.value.kind, caught.value.name) == ("process", "ingest")
    with pytest.raises(DuplicateNameError):
        runner.add_closer("ingest", forever)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grace": -1.0},
        {"grace": float("nan")},
        {"cancel_timeout": 0.0},
        {"force_budget": float("inf")},
    ],
)
def test_budgets_must_be_finite_and_not_negative(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="finite number of seconds"):
        Runner(**kwargs)


def test_closer_timeouts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        Runner().add_closer("db", forever, timeout=0.0)


def test_signal_handling_off_the_main_thread_fails_with_a_hint() -> None:
    outcome: dict[str, object] = {}

    def in_thread() -> None:
        with_signals = Runner()
        with_signals.shutdown()
        try:
            asyncio.run(with_signals.run())
        except SignalsUnavailableError as exc:
            outcome["error"] = exc
        without_signals = Runner(signals=())
        without_signals.shutdown()
        outcome["result"] = asyncio.run(without_signals.run())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(timeout=5)

    error = outcome["error"]
    assert isinstance(error, SignalsUnavailableError)
    assert "signals=()" in str(error)
    result = outcome["result"]
    assert isinstance(result, RunResult)
    assert result.exit_code is ExitCode.OK


@pytest.mark.parametrize("sig", HANDLED, ids=lambda sig: sig.name)
async def test_a_signal_during_start_up_cancels_it_and_the_run_only_closes(
    sig: signal.Signals, caplog: pytest.LogCaptureFixture
) -> None:
    runner = Runner(grace=2.0)
    events: list[str] = []

    async def close() -> None:
        events.append("health closed")

    async def start() -> str:
        send(sig)
        try:
            await forever()  # waiting for ClickHouse, say
        except asyncio.CancelledError:
            events.append("start cancelled")
            raise
        return "never"

    runner.add_closer("health", close)
    with caplog.at_level(logging.INFO, logger="ponix_runner.runner"):
        async with asyncio.timeout(5):
            started = await runner.start_up(start)
        result = await run_within(runner)

    assert started is None
    assert events == ["start cancelled", "health closed"]
    assert result.reason is ShutdownReason.SIGNAL
    assert result.signal == sig.name
    assert not result.forced
    assert result.exit_code is ExitCode.OK
    requested = [r for r in caplog.records if r.getMessage().startswith("shutdown requested")]
    assert [r.getMessage() for r in requested] == ["shutdown requested during start-up"]
    assert getattr(requested[0], "signal_name", None) == sig.name


async def test_a_second_signal_during_start_up_forces_and_cuts_a_hanging_clean_up() -> None:
    runner = Runner(grace=30.0, force_budget=0.2)
    events: list[str] = []

    async def start() -> None:
        send(signal.SIGTERM)
        try:
            await forever()
        except asyncio.CancelledError:
            send(signal.SIGINT)
            try:
                await forever()  # a clean-up that hangs (closing a dead connection, say)
            except asyncio.CancelledError:
                events.append("clean-up cut short")
                raise

    async with asyncio.timeout(5):
        assert await runner.start_up(start) is None
    result = await run_within(runner)

    assert events == ["clean-up cut short"]
    assert result.signal == "SIGTERM"
    assert result.forced
    assert result.exit_code is ExitCode.FORCED


async def test_shutdown_during_start_up_cancels_it() -> None:
    runner = Runner()

    async def start() -> None:
        runner.shutdown()
        await forever()

    async with asyncio.timeout(5):
        assert await runner.start_up(start) is None
    result = await run_within(runner)

    assert result.reason is ShutdownReason.REQUESTED
    assert result.exit_code is ExitCode.OK


async def test_the_handlers_stay_installed_from_start_up_until_run_ends() -> None:
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    runner = Runner()
    during: list[bool] = []

    async def start() -> str:
        during.append(all(signal.getsignal(sig) is not before[sig] for sig in HANDLED))
        return "components"

    async def look(token: ShutdownToken) -> None:
        during.append(all(signal.getsignal(sig) is not before[sig] for sig in HANDLED))
        runner.shutdown()

    assert await runner.start_up(start) == "components"
    during.append(all(signal.getsignal(sig) is not before[sig] for sig in HANDLED))
    runner.add_process("look", look)
    result = await run_within(runner)

    assert during == [True, True, True]
    assert result.reason is ShutdownReason.REQUESTED
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


async def test_a_failing_start_up_raises_and_restores_the_handlers() -> None:
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    runner = Runner()

    async def start() -> None:
        raise RuntimeError("clickhouse unreachable")

    with pytest.raises(RuntimeError, match="clickhouse unreachable"):
        await runner.start_up(start)
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before


async def test_an_outer_timeout_around_start_up_still_surfaces_as_timeout_error() -> None:
    before = {sig: signal.getsignal(sig) for sig in HANDLED}
    runner = Runner()

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await runner.start_up(forever)
    assert {sig: signal.getsignal(sig) for sig in HANDLED} == before
