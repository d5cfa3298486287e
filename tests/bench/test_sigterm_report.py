"""A stop under load that misses its target says so, and names where the ingester's log of it
was kept (the bench's workdir, with the contenders' logs, is removed at the end)."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from ponix_bench.latency import keep_log
from ponix_bench.report import Latency, Report, render

_LATENCY = Latency(
    rate=30_000.0,
    sustained_rate=60_000.0,
    storage="memory",
    published=60_000,
    measured=59_000,
    missing=0,
    p50=0.1,
    p90=0.2,
    p99=0.25,
    max=0.3,
    idle_rss_mib=67.0,
    peak_rss_mib=80.0,
    sigterm_exit_seconds=0.2,
    exit_code=0,
    ack_pending_after_exit=0,
    redelivered=0,
)


def _sigterm_lines(latency: Latency) -> list[str]:
    report = Report(count=100, batch=10, cores=2, versions={}, publish_seconds=1.0)
    report.latency = latency
    text = render(report)
    start = text.index("SIGTERM under load")
    return text[start:].splitlines()


def test_a_stop_within_target_is_ok_and_keeps_no_log() -> None:
    lines = _sigterm_lines(_LATENCY)

    assert _LATENCY.stop_ok
    assert "0.20s" in lines[0]
    assert lines[0].endswith("ok)")
    assert not any("kept" in line for line in lines)


def test_a_slow_or_unclean_stop_is_missed() -> None:
    slow = dataclasses.replace(_LATENCY, sigterm_exit_seconds=4.1)
    unacked = dataclasses.replace(_LATENCY, ack_pending_after_exit=3)
    failed = dataclasses.replace(_LATENCY, exit_code=1)

    assert not slow.stop_ok
    assert not unacked.stop_ok
    assert not failed.stop_ok
    assert _sigterm_lines(slow)[0].endswith("MISSED)")


def test_a_missed_stop_names_the_kept_log(tmp_path: Path) -> None:
    log = tmp_path / "ponix.0.log"
    log.write_text('{"message": "shutdown requested"}\n', encoding="utf-8")

    kept = keep_log(log, "sigterm")
    try:
        assert kept.parent == Path(tempfile.gettempdir())
        assert kept.name.startswith("ponix-bench-sigterm-")
        assert kept.read_text(encoding="utf-8") == log.read_text(encoding="utf-8")
        log.unlink()  # the workdir goes; the copy stays
        assert kept.exists()

        missed = dataclasses.replace(_LATENCY, sigterm_exit_seconds=4.1, sigterm_log=str(kept))
        lines = _sigterm_lines(missed)
        assert lines[1] == f"  the ingester's log of that stop, kept: {kept}"
    finally:
        kept.unlink(missing_ok=True)
