"""How busy a contender's event loop was: the share of the window its main thread ran on a core,
and the share it was ready but waited for one. The report shows both per contender."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from ponix_bench.procs import LoopTimes, loop_times
from ponix_bench.report import ContenderResult, Report, Run, render


def _burn(seconds: float) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def test_a_busy_main_thread_counts_the_time_it_ran() -> None:
    before = loop_times([os.getpid()])
    _burn(0.3)
    after = loop_times([os.getpid()])

    assert 0.25 <= after.on_core - before.on_core < 2.0
    assert after.queued >= before.queued


def test_a_waiting_process_adds_no_time_on_core() -> None:
    # The child reads its stdin until it is closed: blocked, not running.
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        with child.stdin:
            assert child.stdout.readline().strip() == "ready"
            before = loop_times([child.pid])
            _burn(0.3)  # this process runs; the child keeps waiting
            after = loop_times([child.pid])

    assert before.on_core > 0
    assert after.on_core - before.on_core < 0.05


def test_a_process_that_is_gone_counts_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert child.wait(timeout=30) == 0  # exited and reaped: its /proc entry is gone

    assert loop_times([child.pid]) == LoopTimes(0.0, 0.0)


def _result(name: str, on_core: float, queued: float) -> ContenderResult:
    return ContenderResult(
        contender=name,
        base=name,
        processes=1,
        rate=50_000.0,
        seconds=2.0,
        yardstick="raw",
        ratio=None,
        cpu_ratio=None,
        distinct_rows=None,
        rows=None,
        peak_rss_mib=40.0,
        peak_rss_total_mib=40.0,
        idle_rss_mib=30.0,
        stop_seconds=0.1,
        exit_codes=[0],
        redelivered=0,
        cpu_us_per_msg={"own": 6.5, "nats-server": 4.5, "clickhouse": 0.0},
        others_cores=0.02,
        loop_on_core=on_core,
        loop_queued=queued,
    )


def test_the_report_shows_the_median_share_of_each_loop() -> None:
    report = Report(count=100_000, batch=1000, cores=2, versions={}, publish_seconds=1.0)
    report.runs = [
        Run(1, [_result("raw", 0.74, 0.10)]),
        Run(2, [_result("raw", 0.80, 0.06)]),
        Run(3, [_result("raw", 0.78, 0.08)]),
    ]
    report.compute_medians()

    [median] = report.medians
    assert (median.loop_on_core, median.loop_queued) == (0.78, 0.08)
    header, _, row = render(report).splitlines()[2:5]
    assert "loop on core  queued  peak RSS MiB" in header
    assert row.split()[-3:] == ["78%", "8%", "40"]
