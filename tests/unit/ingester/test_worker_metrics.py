"""Writer metrics counted in worker processes, exported by the ingester, never go backwards.

Each "worker" here has its own metrics on its own registry (as a worker process has its own
process-wide metrics); restarting one starts its metrics again from zero, as a new process does.
The ingester's metrics must then equal what all workers counted, plus what the ingester counted
itself, and never decrease, so Prometheus ``rate()`` holds across worker restarts. A histogram
in the ingester must equal one fed the values the workers observed (compared by ``collect()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from structlog.testing import capture_logs

from ponix_ingester.worker_metrics import MAX_OBSERVATIONS, MetricsSink, MetricsTracker

BUCKETS = (1, 10, 100, 1000)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.rows = Counter("t_rows_inserted", "rows", registry=r)
        self.failures = Counter("t_insert_failures", "failures", ["code"], registry=r)
        self.batch = Histogram("t_batch_rows", "rows per insert", buckets=BUCKETS, registry=r)
        self.in_flight = Gauge("t_in_flight_rows", "in flight", registry=r)
        self.last_at = Gauge("ponix_last_insert_at_seconds", "last insert", registry=r)

    @property
    def all(self) -> tuple[Counter | Gauge | Histogram, ...]:
        return (self.rows, self.failures, self.batch, self.in_flight, self.last_at)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def histogram(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in self.batch.collect()
            for s in family.samples
            if not s.name.endswith("_created")
        }


class Worker:
    """A worker process: its own metrics and tracker, both new after a restart."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.metrics = Metrics()
        self.tracker = MetricsTracker(self.metrics.all)


def report(sink: MetricsSink, worker: Worker) -> None:
    changes = worker.tracker.changes()
    if changes is not None:
        sink.apply(worker, changes)


def test_a_restarted_worker_never_takes_the_ingester_counters_back() -> None:
    main = Metrics()
    sink = MetricsSink(main.all)
    a, b = Worker(), Worker()
    seen: list[float] = []

    def check(expected: float) -> None:
        value = main.value("t_rows_inserted_total")
        assert value == expected
        assert not seen or value >= seen[-1], f"went back from {seen[-1]} to {value}"
        seen.append(value)

    a.metrics.rows.inc(5)
    report(sink, a)
    check(5)
    b.metrics.rows.inc(3)
    report(sink, b)
    check(8)
    a.metrics.rows.inc(4)  # a's total is 9 now
    report(sink, a)
    check(12)
    a.restart()  # a's total starts again from 0 ...
    a.metrics.rows.inc(1)
    report(sink, a)
    check(13)  # ... and only adds
    main.rows.inc(2)  # the ingester counted something itself
    report(sink, b)  # nothing new from b: no report at all
    check(15)
    b.metrics.rows.inc(1)
    report(sink, b)
    check(16)


def test_gauges_are_the_live_workers_sum_or_the_latest() -> None:
    main = Metrics()
    sink = MetricsSink(main.all)
    a, b = Worker(), Worker()
    a.metrics.in_flight.set(100)
    a.metrics.last_at.set(2000.0)
    b.metrics.in_flight.set(30)
    b.metrics.last_at.set(1000.0)
    report(sink, a)
    report(sink, b)
    assert main.value("t_in_flight_rows") == 130
    assert main.value("ponix_last_insert_at_seconds") == 2000.0
    sink.forget(a)  # a exited
    assert main.value("t_in_flight_rows") == 30
    assert main.value("ponix_last_insert_at_seconds") == 2000.0
    b.metrics.in_flight.set(0)
    report(sink, b)
    assert main.value("t_in_flight_rows") == 0


def test_a_histogram_relays_the_latest_values_and_counts_the_dropped_ones() -> None:
    main, expected = Metrics(), Metrics()
    sink = MetricsSink(main.all)
    worker = Worker()
    values = [float(v % 1500) for v in range(MAX_OBSERVATIONS + 5)]
    for value in values:
        worker.metrics.batch.observe(value)
    with capture_logs() as logs:
        report(sink, worker)
    for value in values[5:]:
        expected.batch.observe(value)
    assert main.histogram() == expected.histogram()
    # The worker's own histogram still counted every value.
    assert worker.metrics.value("t_batch_rows_count") == MAX_OBSERVATIONS + 5
    dropped = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["metric"], e["dropped"], e["kept"]) for e in dropped] == [
        ("t_batch_rows", 5, MAX_OBSERVATIONS)
    ]
    # The next report starts afresh: nothing dropped, nothing new.
    worker.metrics.batch.observe(3.5)
    expected.batch.observe(3.5)
    with capture_logs() as logs:
        report(sink, worker)
    assert main.histogram() == expected.histogram()
    assert logs == []


def test_a_labelled_histogram_is_refused() -> None:
    labelled = Histogram("t_labelled", "by code", ["code"], registry=CollectorRegistry())
    with pytest.raises(TypeError, match="labelled histogram"):
        MetricsTracker([labelled])


# One step of a worker's life: count rows, fail, observe a batch, report, or restart.
steps = st.lists(
    st.tuples(
        st.integers(0, 2),
        st.one_of(
            st.tuples(st.just("rows"), st.integers(0, 5000)),
            st.tuples(st.just("fail"), st.sampled_from(["timeout", "refused"])),
            st.tuples(st.just("observe"), st.integers(0, 2000)),
            st.tuples(st.just("report"), st.none()),
            st.tuples(st.just("restart"), st.none()),
        ),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_the_ingester_counts_what_every_worker_incarnation_counted(
    plan: list[tuple[int, tuple[str, object]]],
) -> None:
    main = Metrics()
    sink = MetricsSink(main.all)
    workers = [Worker() for _ in range(3)]
    reported = Metrics()  # what the workers counted and reported so far
    pending: list[list[tuple[str, object]]] = [[] for _ in workers]
    last_rows = 0.0

    def replay(into: Metrics, what: list[tuple[str, object]]) -> None:
        for kind, arg in what:
            if kind == "rows":
                into.rows.inc(float(arg))  # type: ignore[arg-type]
            elif kind == "fail":
                into.failures.labels(code=str(arg)).inc()
            else:
                into.batch.observe(float(arg))  # type: ignore[arg-type]

    for index, (kind, arg) in plan:
        worker = workers[index]
        if kind == "report":
            report(sink, worker)
            replay(reported, pending[index])
            pending[index] = []
        elif kind == "restart":  # what it had not reported is lost, as with a killed process
            worker.restart()
            pending[index] = []
        else:
            replay(worker.metrics, [(kind, arg)])
            pending[index].append((kind, arg))
        rows = main.value("t_rows_inserted_total")
        assert rows >= last_rows
        last_rows = rows
        assert rows == reported.value("t_rows_inserted_total")
        for code in ("timeout", "refused"):
            assert main.value("t_insert_failures_total", code=code) == reported.value(
                "t_insert_failures_total", code=code
            )
        assert main.histogram() == reported.histogram()
    for index, worker in enumerate(workers):
        report(sink, worker)
        replay(reported, pending[index])
    assert main.histogram() == reported.histogram()
    assert main.value("t_rows_inserted_total") == reported.value("t_rows_inserted_total")
