"""``ponix bench`` end to end on a small count, so the harness cannot rot.

No figure is asserted (timing belongs to the benchmark, not to tests); only that every contender
ran to completion, every ratio is to the right yardstick, every table holds each envelope
exactly once, and the report is whole.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

COUNT = 2_000
# The default contenders, in order, and the contender each one's ratio is to.
YARDSTICKS = {
    "raw": "raw",
    "raw_x2": "raw",
    "ceiling": "raw",
    "ponix": "raw",
    "ponix_x2": "raw_x2",
}


# Six contenders each start a Python process (two for the x2 ones): about 50 s on the shared
# 2 cores, 110 s when other suites load them too.
@pytest.mark.timeout(300)
def test_ponix_bench_runs_every_contender_and_reports_whole_figures(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ponix_cli",
            "bench",
            "--count",
            str(COUNT),
            "--runs",
            "1",
            "--latency-seconds",
            "2",
            "--save",
            str(tmp_path / "report.json"),
            "--data-dir",
            str(tmp_path / "bench"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    # The table a user reads names every contender with its ratio to raw or raw_x2.
    table = done.stdout
    for name, yardstick in YARDSTICKS.items():
        assert re.search(rf"^{name} +\S+ +\S+ +\d+\.\d\d x {yardstick} ", table, re.MULTILINE), (
            table
        )
    assert re.search(r"p99 \d+\.\d+s", table), table

    assert report["count"] == COUNT
    assert report["cores"] >= 1
    assert len(report["loadavg"]) == 2
    assert {"python", "nats-server", "clickhouse", "nats-py"} <= set(report["versions"])
    # The ingesters ran in an environment installed as the image installs it (uv is on the
    # PATH of every machine the README sets up).
    assert report["versions"]["ingester environment"].startswith("ponix-ingester only"), report
    [run] = report["runs"]
    names = [r["contender"] for r in run["results"]]
    assert names == list(YARDSTICKS)
    rates = {r["contender"]: r["rate"] for r in run["results"]}
    for result in run["results"]:
        assert result["rate"] > 0, result
        assert result["yardstick"] == YARDSTICKS[result["contender"]], result
        assert result["ratio"] == pytest.approx(result["rate"] / rates[result["yardstick"]])
        assert {"own", "nats-server", "clickhouse"} <= set(result["cpu_us_per_msg"]), result
        assert result["others_cores"] >= 0, result
        # Each contender's event loop ran in the window. With 2,000 envelopes the window is a
        # few tens of ms, too short to bound the share: the loops' work around it counts too.
        assert result["loop_on_core"] > 0, result
        assert result["loop_queued"] >= 0, result
        assert result["peak_rss_mib"] > 0, result
        assert all(code == 0 for code in result["exit_codes"]), result
        if result["base"] in ("raw", "raw_x2", "ceiling"):
            assert result["distinct_rows"] is None
        else:
            assert result["distinct_rows"] == result["rows"] == COUNT, result
            # An ingester decodes and inserts: its own processes cannot have used no CPU.
            assert result["cpu_us_per_msg"]["own"] > 0, result
            assert result["cpu_ratio"] is not None, result
    raw = next(r for r in run["results"] if r["contender"] == "raw")
    assert raw["ratio"] == 1.0
    assert [m["contender"] for m in report["medians"]] == names
    targets = {m["contender"]: m["target"] for m in report["medians"]}
    assert targets["ponix"] == targets["ponix_x2"] == 0.7

    latency = report["latency"]
    assert latency["measured"] > 0
    assert latency["missing"] == 0
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert latency["exit_code"] == 0
    assert latency["ack_pending_after_exit"] == 0
    assert latency["idle_rss_mib"] > 0
