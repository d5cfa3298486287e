"""A worker process starts, handshakes and exits cleanly, and says nothing about its own import.

``python -m`` on a module its package imports makes runpy warn (RuntimeWarning: '...' found in
sys.modules after import of package ...). The pool runs the package's ``__main__`` instead.
``filterwarnings = error`` only covers this process, so the child's stderr (inherited, captured
by ``capfd``) is checked.
No ClickHouse is needed: the worker connects on its first insert, and there is none.
"""

from __future__ import annotations

import subprocess

import pytest

from ponix_clickhouse import TimeRange, envelope_layout
from ponix_config import ClickHouseSettings
from ponix_runner import Deadline
from ponix_workers import WORKER_COMMAND, WorkerConfig, WorkerMetrics, WorkerPool


def config() -> WorkerConfig:
    return WorkerConfig(
        clickhouse=ClickHouseSettings(url="clickhouse://127.0.0.1:9"),
        layout=envelope_layout((18, 16)),
        max_envelope_bytes=4096,
        time_range=TimeRange.for_column_type("DateTime64(3)", 1000),
        subjects=None,
        shutdown_timeout=2.0,
    )


async def test_starting_and_stopping_a_worker_writes_no_warning(
    capfd: pytest.CaptureFixture[str],
) -> None:
    worker_metrics = WorkerMetrics()
    try:
        pool = await WorkerPool.start(config(), 1, Deadline.after(60), worker_metrics)
        assert pool.alive
        await pool.close()  # raises if the worker exits with anything but 0
    finally:
        worker_metrics.close()
    err = capfd.readouterr().err
    assert "Warning" not in err, err
    assert "found in sys.modules" not in err, err


def test_the_worker_module_runs_without_runpy_warnings() -> None:
    # Errors out on any warning at all, not only the one in the stderr text above.
    proc = subprocess.run(
        [*WORKER_COMMAND[:1], "-W", "error", *WORKER_COMMAND[1:]],
        input=b"",  # end of input before a config: the worker gives up at once
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert b"Warning" not in proc.stderr, proc.stderr.decode()
    assert proc.returncode == 0, proc.stderr.decode()
