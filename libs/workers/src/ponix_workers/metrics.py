"""The workers' metrics, through prometheus_client's multiprocess mode.

A worker runs the ``BatchWriter``, so the writer's metrics (:data:`WORKER_METRICS`) are
recorded there. Each worker is started with ``PROMETHEUS_MULTIPROC_DIR`` set to a private
directory of the ingester (:class:`WorkerMetrics`), so prometheus_client keeps its values in
files there, one per metric type and pid. While that directory exists, this process exports
those metrics from the files, merged by prometheus_client's ``MultiProcessCollector``:

* counters and histograms are summed over every worker that ever wrote there, so they never go
  backwards when a worker exits (its files stay);
* gauges follow their ``multiprocess_mode`` (``ponix_telemetry.metrics``): rows and bytes in
  flight and rows held are the live workers' sum (``livesum``: an exited worker's files are
  removed by ``mark_process_dead``, as the prometheus_client docs say), the last insert time
  is the latest any worker wrote (``max``).

Meanwhile this process's own copies of those metrics, which nothing here records (the writer
is in the workers), are unregistered, so each name is exported once. The held seconds are not
among them: the writer computes that gauge when it is scraped, which a file cannot hold; the
pool exports it from what the workers say (:class:`~ponix_workers.WorkerPool`).

Only the workers' environment carries the variable: the ingester itself, and the inline
ingester (no workers) above all, keep prometheus_client's in-process values and pay nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from ponix_telemetry import metrics

__all__ = ("MULTIPROC_DIR_ENV", "WORKER_METRICS", "WorkerMetrics")

MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

WORKER_METRICS: Final[tuple[MetricWrapperBase, ...]] = (
    metrics.INSERT_BATCH_ROWS,
    metrics.INSERT_DURATION,
    metrics.INSERT_FAILURES,
    metrics.ROWS_INSERTED,
    metrics.INSERTED_BYTES,
    metrics.ROWS_REJECTED,
    metrics.HOLDS,
    metrics.IN_FLIGHT_ROWS,
    metrics.IN_FLIGHT_BYTES,
    metrics.HELD_ROWS,
    metrics.LAST_INSERT_AT,
)
"""What the workers record (the ``BatchWriter``'s metrics, but the held seconds)."""


class WorkerMetrics:
    """A private multiprocess directory for worker processes, exported by this process's
    registry until :meth:`close` removes it. Pools may come and go on one directory: what
    their workers counted stays counted."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ponix-worker-metrics-"))
        _EXPORTER.add(self.directory)
        self._closed = False

    def environment(self) -> Mapping[str, str]:
        """The environment of a worker process: this one's, writing metrics here."""
        return {**os.environ, MULTIPROC_DIR_ENV: str(self.directory)}

    def process_exited(self, pid: int) -> None:
        """Forget the live gauges of an exited worker (its counts stay)."""
        if not self._closed:
            mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Stop exporting the workers' metrics and remove the directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        _EXPORTER.remove(self.directory)
        shutil.rmtree(self.directory, ignore_errors=True)


class _Exporter:
    """The collector that reads every open :class:`WorkerMetrics` directory; registered in
    place of this process's copies of :data:`WORKER_METRICS` while any is open."""

    def __init__(self) -> None:
        self._directories: list[Path] = []

    def add(self, directory: Path) -> None:
        if not self._directories:
            for metric in WORKER_METRICS:
                REGISTRY.unregister(metric)
            REGISTRY.register(self)
        self._directories.append(directory)

    def remove(self, directory: Path) -> None:
        self._directories.remove(directory)
        if not self._directories:
            REGISTRY.unregister(self)
            for metric in WORKER_METRICS:
                REGISTRY.register(metric)

    def describe(self) -> Iterable[Metric]:
        return [family for metric in WORKER_METRICS for family in metric.describe()]

    def collect(self) -> Iterable[Metric]:
        files = [str(path) for directory in self._directories for path in directory.glob("*.db")]
        merged: dict[str, Metric] = {
            family.name: family
            for family in MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        }
        for metric in WORKER_METRICS:
            for family in metric.describe():
                # Before a worker wrote a series, this process's own (empty) copy stands in.
                yield merged.get(family.name) or next(iter(metric.collect()))


_EXPORTER: Final = _Exporter()
