"""The writer's metrics when the writer runs in worker processes (``INGESTER_WORKERS`` >= 1).

The writers count in the workers; the ingester exports. Each worker sends what changed since
its previous report (:class:`MetricsTracker`): for counters the increments, for histograms the
values they observed, for gauges their new values. The ingester adds the increments to its own
counters and observes the values in its own histograms (:class:`MetricsSink`), so its counters
and histograms only ever grow, as Prometheus ``rate()`` needs: a worker that restarts counts
from zero again, and its first report is all increment. Gauges are set: rows in flight are
summed over the live workers, the last insert time is the latest any worker reported.

Only public prometheus_client calls: counters are read with ``collect()`` and added with
``inc()``; a histogram's values are recorded as the writer observes them (the tracker wraps the
histogram's ``observe``, which still runs) and replayed with ``observe()``. The writer observes
once per insert, so a report holds a handful of values; at most :data:`MAX_OBSERVATIONS` per
histogram (the latest), the others are dropped, and counted in a warning.

Cheap on purpose: a report holds only the series that changed (nothing at all when idle), and
the ingester pays a few ``inc()`` and ``observe()`` calls per report.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Final, TypeAlias, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from ponix_telemetry import get_logger, metrics

log = get_logger(__name__)

# The writer's metrics (ponix_clickhouse.BatchWriter records them).
WRITER_METRICS: Final = (
    metrics.BATCH_ROWS,
    metrics.INSERT_SECONDS,
    metrics.INSERT_FAILURES,
    metrics.ROWS_INSERTED,
    metrics.IN_FLIGHT_ROWS,
    metrics.LAST_INSERT_AT,
)
# Gauges exported as the latest value any worker reported; the others as the workers' sum.
LATEST_GAUGES: Final = frozenset({"ponix_last_insert_at_seconds"})

MAX_OBSERVATIONS: Final = 1000
"""A histogram's values a worker keeps between two reports: the latest; older ones are dropped."""

Labels: TypeAlias = tuple[tuple[str, str], ...]
Series: TypeAlias = tuple[str, Labels]
"""A metric family's name and one set of its label values."""
Increment: TypeAlias = tuple[str, Labels, tuple[float, ...]]
"""A counter's increment ``(n,)``; a histogram's: the values it observed, oldest first."""
GaugeValue: TypeAlias = tuple[str, Labels, float]
Report: TypeAlias = tuple[list[Increment], list[GaugeValue]]

_AnyMetric: TypeAlias = Counter | Gauge | Histogram
_M = TypeVar("_M", Counter, Gauge, Histogram)


class MetricsTracker:
    """The worker's side: what changed in ``tracked`` since the last :meth:`changes`.

    Histograms must be unlabelled (the writer's are), and are recorded from this tracker's
    creation on: create it, once per process, before the writer observes anything."""

    def __init__(
        self, tracked: Sequence[_AnyMetric] = WRITER_METRICS, *, keep: int = MAX_OBSERVATIONS
    ) -> None:
        self._tracked = tuple(m for m in tracked if not isinstance(m, Histogram))
        self._histograms = {
            _histogram_name(m): _Recorder(m, keep) for m in tracked if isinstance(m, Histogram)
        }
        self._totals: dict[Series, float] = {}
        self._gauges: dict[Series, float] = {}

    def changes(self) -> Report | None:
        """The increments and new gauge values since the previous call; None if nothing."""
        increments: list[Increment] = []
        gauges: list[GaugeValue] = []
        for name, recorder in self._histograms.items():
            values, dropped = recorder.take()
            if dropped:
                log.warning(
                    "histogram values dropped before a metrics report",
                    metric=name,
                    dropped=dropped,
                    kept=len(values),
                )
            if values:
                increments.append((name, (), values))
        for metric in self._tracked:
            for family in metric.collect():
                if family.type == "gauge":
                    for sample in family.samples:
                        series = (family.name, _labels(sample.labels.items()))
                        if self._gauges.get(series) != sample.value:
                            self._gauges[series] = sample.value
                            gauges.append((*series, sample.value))
                    continue
                for series, total in _counter_totals(family).items():
                    last = self._totals.get(series)
                    if total == last:
                        continue
                    self._totals[series] = total
                    increments.append((*series, (total if last is None else total - last,)))
        return (increments, gauges) if increments or gauges else None


class MetricsSink:
    """The ingester's side: adds each worker's increments to ``into``, sets its gauges."""

    def __init__(self, into: Sequence[_AnyMetric] = WRITER_METRICS) -> None:
        self._by_name: dict[str, _AnyMetric] = {
            family.name: metric for metric in into for family in metric.collect()
        }
        self._gauges: dict[object, dict[Series, float]] = {}
        self._latest: dict[Series, float] = {}

    def apply(self, worker: object, report: Report) -> None:
        """Count one report of ``worker`` (any hashable that names the worker process)."""
        increments, gauges = report
        for name, labels, delta in increments:
            metric = self._by_name.get(name)
            if isinstance(metric, Counter):
                if delta[0] > 0:
                    _child(metric, labels).inc(delta[0])
            elif isinstance(metric, Histogram):
                histogram = _child(metric, labels)
                for value in delta:
                    histogram.observe(value)
        if gauges:
            values = self._gauges.setdefault(worker, {})
            for name, labels, value in gauges:
                values[(name, labels)] = value
            self._set_gauges((name, labels) for name, labels, _ in gauges)

    def forget(self, worker: object) -> None:
        """``worker`` is gone: its gauges no longer count (its counts stay counted)."""
        gone = self._gauges.pop(worker, None)
        if gone:
            self._set_gauges(gone)

    def _set_gauges(self, changed: Iterable[Series]) -> None:
        for series in changed:
            name, labels = series
            metric = self._by_name.get(name)
            if not isinstance(metric, Gauge):
                continue
            values = [v[series] for v in self._gauges.values() if series in v]
            if name in LATEST_GAUGES:
                if not values:
                    continue
                value = self._latest[series] = max(self._latest.get(series, 0.0), *values)
            else:
                value = sum(values)
            _child(metric, labels).set(value)


class _Recorder:
    """Keeps the latest ``keep`` values ``histogram`` observes from now on, and counts the rest.

    It replaces the histogram's ``observe`` with one that calls it, then keeps the value."""

    def __init__(self, histogram: Histogram, keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.values: deque[float] = deque(maxlen=keep)
        self.dropped = 0
        observe = histogram.observe
        values = self.values

        def recording(amount: float, exemplar: dict[str, str] | None = None) -> None:
            observe(amount, exemplar)
            if len(values) == keep:
                self.dropped += 1
            values.append(float(amount))

        histogram.observe = recording  # type: ignore[method-assign]

    def take(self) -> tuple[tuple[float, ...], int]:
        """The values kept since the last call, oldest first, and how many were dropped."""
        values = self.values
        taken: list[float] = []
        while values:  # popleft, not a copy then clear(): an observe() may come in between
            taken.append(values.popleft())
        dropped, self.dropped = self.dropped, 0
        return tuple(taken), dropped


def _histogram_name(histogram: Histogram) -> str:
    """An unlabelled histogram's name (a labelled one observes in children made later)."""
    families = list(histogram.collect())
    for family in families:
        if any(s.name == family.name + "_count" and not s.labels for s in family.samples):
            return family.name
    names = ", ".join(f.name for f in families)
    raise TypeError(f"cannot relay a labelled histogram ({names})")


def _labels(items: Iterable[tuple[str, str]]) -> Labels:
    return tuple(sorted(items))


def _counter_totals(family: Metric) -> dict[Series, float]:
    """A counter's total, by series."""
    if family.type != "counter":
        raise TypeError(f"cannot relay a {family.type} metric ({family.name})")
    total = family.name + "_total"
    return {
        (family.name, _labels(s.labels.items())): s.value for s in family.samples if s.name == total
    }


def _child(metric: _M, labels: Labels) -> _M:
    return metric.labels(**dict(labels)) if labels else metric
