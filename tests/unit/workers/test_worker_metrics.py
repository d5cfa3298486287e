"""What worker processes record reaches this process's ``/metrics`` (the registry it serves),
once per name, summed over the workers; a worker that exits keeps its counts but not its live
gauges; closing the directory gives the names back to this process's own metrics.

A "worker" here is a small child process that records like the writer does, in the directory's
environment (prometheus_client's multiprocess mode); no server is needed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ponix_telemetry import metrics
from ponix_workers import WorkerMetrics

RECORD = """
import os
from ponix_telemetry import metrics
writer = metrics.WriterMetrics("ponix.processed_envelopes")
writer.rows_inserted.inc({rows})
writer.duration.observe(0.02)
writer.in_flight_rows.inc({in_flight})
writer.last_insert_at.set({at})
print(os.getpid())
"""
TABLE = {"table": "ponix.processed_envelopes"}


def record(directory: WorkerMetrics, *, rows: int, in_flight: int, at: float) -> int:
    """Run a worker-like child that records, then exits; its pid."""
    done = subprocess.run(
        [sys.executable, "-c", RECORD.format(rows=rows, in_flight=in_flight, at=at)],
        env=dict(directory.environment()),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout)


def value(name: str) -> float:
    return REGISTRY.get_sample_value(name, TABLE) or 0.0


@pytest.fixture
def worker_metrics() -> Iterator[WorkerMetrics]:
    directory = WorkerMetrics()
    try:
        yield directory
    finally:
        directory.close()


def test_workers_counts_add_up_once_per_name_and_survive_their_exit(
    worker_metrics: WorkerMetrics,
) -> None:
    first = record(worker_metrics, rows=5, in_flight=3, at=1000.0)
    second = record(worker_metrics, rows=7, in_flight=2, at=2000.0)
    assert value("ponix_rows_inserted_total") == 12
    assert value("ponix_insert_duration_seconds_count") == 2
    assert value("ponix_in_flight_rows") == 5  # livesum: both count until marked dead
    assert value("ponix_last_insert_timestamp_seconds") == 2000.0  # max
    names = [f.name for f in text_string_to_metric_families(generate_latest(REGISTRY).decode())]
    for family in ("ponix_rows_inserted", "ponix_insert_duration_seconds", "ponix_in_flight_rows"):
        assert names.count(family) == 1, f"{family} exported {names.count(family)} times"

    worker_metrics.process_exited(first)
    worker_metrics.process_exited(second)
    assert value("ponix_rows_inserted_total") == 12, "a worker's exit took its counts away"
    assert value("ponix_insert_duration_seconds_count") == 2
    assert value("ponix_in_flight_rows") == 0
    assert value("ponix_last_insert_timestamp_seconds") == 2000.0


def test_closing_gives_the_names_back_and_removes_the_directory() -> None:
    own = value("ponix_rows_inserted_total")
    directory = WorkerMetrics()
    record(directory, rows=4, in_flight=0, at=1.0)
    assert value("ponix_rows_inserted_total") == 4
    directory.close()
    directory.close()  # idempotent
    assert not directory.directory.exists()
    assert value("ponix_rows_inserted_total") == own
    metrics.ROWS_INSERTED.labels(**TABLE).inc(0)  # this process's own counter is usable again
    assert "ponix_rows_inserted_total" in generate_latest(REGISTRY).decode()


def test_the_environment_is_the_workers_only(worker_metrics: WorkerMetrics) -> None:
    import os

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    assert worker_metrics.environment()["PROMETHEUS_MULTIPROC_DIR"] == str(worker_metrics.directory)
