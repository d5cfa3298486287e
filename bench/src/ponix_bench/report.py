"""The benchmark's results: per run, medians, latency, memory; as a table or as JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ponix_bench.contenders import REFERENCE, TARGETS

# The latency phase's targets (issue 15: no regression).
P99_TARGET_SECONDS = 0.5
IDLE_RSS_TARGET_MIB = 70.0
SIGTERM_TARGET_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class ContenderResult:
    """One contender in one run."""

    contender: str
    base: str
    processes: int
    rate: float
    """Envelopes/s from the first delivery to the last ack."""
    seconds: float
    yardstick: str
    """``raw`` or ``raw_x2``: the contender with as many processes that ``ratio`` is to."""
    ratio: float | None
    """``rate`` / the yardstick's rate in the same run (None: the yardstick did not run)."""
    cpu_ratio: float | None
    """The yardstick's own CPU per envelope / this contender's, in the same run: the ratio
    ``ratio`` would be if CPU were the only limit (steadier on a shared machine)."""
    distinct_rows: int | None
    """Distinct envelope ids in its table (None: it writes none)."""
    rows: int | None
    peak_rss_mib: float
    """Largest VmHWM among its processes (a worker process counts separately)."""
    peak_rss_total_mib: float
    """Sum of VmHWM over all its processes."""
    idle_rss_mib: float
    """VmRSS of its largest process once ready, before the first delivery."""
    stop_seconds: float
    exit_codes: list[int | None]
    redelivered: int
    cpu_us_per_msg: dict[str, float]
    """CPU microseconds per envelope during the window: ``own`` (all the contender's processes:
    ``main``, the process(es) started, plus ``workers``, their children), ``nats-server`` and
    ``clickhouse``; on 2 cores they all compete."""
    others_cores: float
    """Cores busy with everything else on the machine during the window (the harness, other
    users): how loaded the machine was."""
    loop_on_core: float
    """Share of the window its event loops (each process's main thread) ran on a core: under 1,
    a loop is not bound by its own CPU alone (``procs.LoopTimes``)."""
    loop_queued: float
    """Share of the window its event loops were ready to run but waited for a core."""


@dataclass(frozen=True, slots=True)
class Run:
    index: int
    results: list[ContenderResult]


@dataclass(frozen=True, slots=True)
class Median:
    """A contender's medians over the runs."""

    contender: str
    base: str
    rate: float
    yardstick: str
    ratio: float | None
    """Median of the per-run ratios (not the ratio of the median rates)."""
    ratios: list[float]
    cpu_ratio: float | None
    """Median of the per-run CPU ratios."""
    target: float | None
    moonshot: float | None
    reference: float | None
    distinct_rows_ok: bool | None
    peak_rss_mib: float
    peak_rss_total_mib: float
    runs: int
    cpu_us_per_msg: dict[str, float]
    others_cores: float
    loop_on_core: float
    loop_queued: float

    @property
    def verdict(self) -> str:
        if self.target is None or self.ratio is None:
            return "" if self.reference is None else f"(ref {self.reference:.2f})"
        if self.moonshot is not None and self.ratio >= self.moonshot:
            return f">= {self.target:.2f} ok, moonshot {self.moonshot:.2f} ok"
        return f">= {self.target:.2f} {'ok' if self.ratio >= self.target else 'MISSED'}"


@dataclass(frozen=True, slots=True)
class Latency:
    """Publish -> queryable at a fixed rate, and SIGTERM to exit while under that load."""

    rate: float
    sustained_rate: float
    storage: str
    published: int
    measured: int
    missing: int
    p50: float
    p90: float
    p99: float
    max: float
    idle_rss_mib: float
    peak_rss_mib: float
    sigterm_exit_seconds: float
    exit_code: int | None
    ack_pending_after_exit: int
    redelivered: int
    sigterm_log: str | None = None
    """Where the ingester's log was kept when its stop missed the target (else None)."""

    @property
    def stop_ok(self) -> bool:
        """The SIGTERM target: exit 0 within SIGTERM_TARGET_SECONDS, nothing left unacked."""
        return (
            self.sigterm_exit_seconds <= SIGTERM_TARGET_SECONDS
            and self.ack_pending_after_exit == 0
            and not self.exit_code
        )


@dataclass(frozen=True, slots=True)
class Soak:
    """RSS of the ingester sampled under a steady load."""

    seconds: float
    rate: float
    samples_mib: list[tuple[float, float]]
    start_mib: float
    end_mib: float
    max_mib: float


@dataclass
class Report:
    count: int
    batch: int
    cores: int
    versions: dict[str, str]
    publish_seconds: float
    runs: list[Run] = field(default_factory=list)
    medians: list[Median] = field(default_factory=list)
    latency: Latency | None = None
    soak: Soak | None = None
    loadavg: list[float] = field(default_factory=list)
    """The machine's 1-minute load average when the timed runs began and when they ended."""
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def compute_medians(self) -> None:
        order: list[str] = []
        by_name: dict[str, list[ContenderResult]] = {}
        for run in self.runs:
            for result in run.results:
                if result.contender not in by_name:
                    order.append(result.contender)
                by_name.setdefault(result.contender, []).append(result)
        self.medians = []
        for name in order:
            results = by_name[name]
            ratios = [r.ratio for r in results if r.ratio is not None]
            cpu_ratios = [r.cpu_ratio for r in results if r.cpu_ratio is not None]
            rows = [r.distinct_rows for r in results]
            base = results[0].base
            target, moonshot = TARGETS.get(base, (None, None)) if name == base else (None, None)
            self.medians.append(
                Median(
                    contender=name,
                    base=base,
                    rate=statistics.median(r.rate for r in results),
                    yardstick=results[0].yardstick,
                    ratio=statistics.median(ratios) if ratios else None,
                    ratios=ratios,
                    cpu_ratio=statistics.median(cpu_ratios) if cpu_ratios else None,
                    target=target,
                    moonshot=moonshot,
                    reference=REFERENCE.get(base) if name == base else None,
                    distinct_rows_ok=None
                    if rows[0] is None
                    else all(n == self.count for n in rows),
                    peak_rss_mib=max(r.peak_rss_mib for r in results),
                    peak_rss_total_mib=max(r.peak_rss_total_mib for r in results),
                    runs=len(results),
                    cpu_us_per_msg={
                        key: statistics.median(r.cpu_us_per_msg.get(key, 0.0) for r in results)
                        for key in results[0].cpu_us_per_msg
                    },
                    others_cores=statistics.median(r.others_cores for r in results),
                    loop_on_core=statistics.median(r.loop_on_core for r in results),
                    loop_queued=statistics.median(r.loop_queued for r in results),
                )
            )

    @property
    def rows_ok(self) -> bool:
        """Whether every writing contender stored exactly ``count`` distinct rows in every run."""
        return all(m.distinct_rows_ok is not False for m in self.medians)

    def median_rate(self, contender: str) -> float | None:
        for median in self.medians:
            if median.contender == contender:
                return median.rate
        return None


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return out


def render(report: Report) -> str:
    loadavg = " -> ".join(f"{v:.1f}" for v in report.loadavg)
    lines = [
        f"ponix bench: {report.count:,} envelopes pre-published in {report.publish_seconds:.1f}s, "
        f"batch {report.batch}, {len(report.runs)} run(s), medians; {report.cores} cores"
        + (f", load average {loadavg}" if loadavg else "")
        + "; "
        + ", ".join(f"{k} {v}" for k, v in report.versions.items()),
        "",
    ]
    rows: list[list[str]] = []
    for m in report.medians:
        per_run = [
            _rate(r.rate) for run in report.runs for r in run.results if r.contender == m.contender
        ]
        cpu = m.cpu_us_per_msg
        rows.append(
            [
                m.contender,
                _rate(m.rate),
                " ".join(per_run),
                "-" if m.ratio is None else f"{m.ratio:.2f} x {m.yardstick}",
                " ".join(f"{r:.2f}" for r in m.ratios),
                m.verdict,
                "-" if m.cpu_ratio is None else f"{m.cpu_ratio:.2f}",
                "-"
                if m.distinct_rows_ok is None
                else ("= count" if m.distinct_rows_ok else "WRONG"),
                f"{cpu.get('own', 0.0):.1f}",
                f"{cpu.get('nats-server', 0.0):.1f}",
                f"{cpu.get('clickhouse', 0.0):.1f}",
                f"{m.others_cores:.2f}",
                f"{m.loop_on_core:.0%}",
                f"{m.loop_queued:.0%}",
                f"{m.peak_rss_mib:.0f}"
                + (
                    f" ({m.peak_rss_total_mib:.0f})"
                    if m.peak_rss_total_mib > m.peak_rss_mib + 0.5
                    else ""
                ),
            ]
        )
    lines += _table(
        [
            "contender",
            "env/s",
            "env/s per run",
            "ratio",
            "ratio per run",
            "target",
            "CPU ratio",
            "distinct rows",
            "CPU us/env own",
            "nats",
            "ch",
            "other cores",
            "loop on core",
            "queued",
            "peak RSS MiB",
        ],
        rows,
    )
    lat = report.latency
    if lat is not None:
        latency_ok = lat.p99 <= P99_TARGET_SECONDS and not lat.missing
        lines += [
            "",
            f"latency publish -> queryable at {_rate(lat.rate)}/s (half of ponix's "
            f"{_rate(lat.sustained_rate)}/s), {lat.storage} stream: p50 {lat.p50:.3f}s  "
            f"p90 {lat.p90:.3f}s  p99 {lat.p99:.3f}s  max {lat.max:.3f}s  "
            f"({lat.measured:,} envelopes, {lat.missing} missing)  "
            f"target p99 <= {P99_TARGET_SECONDS:g}s {'ok' if latency_ok else 'MISSED'}",
            f"ingester idle RSS {lat.idle_rss_mib:.1f} MiB (target <= {IDLE_RSS_TARGET_MIB:.0f} "
            f"{'ok' if lat.idle_rss_mib <= IDLE_RSS_TARGET_MIB else 'MISSED'}), peak under load "
            f"{lat.peak_rss_mib:.0f} MiB",
            f"SIGTERM under load: exit {lat.exit_code} in {lat.sigterm_exit_seconds:.2f}s, "
            f"{lat.ack_pending_after_exit} ack pending after exit "
            f"(target <= {SIGTERM_TARGET_SECONDS:g}s and 0 {'ok' if lat.stop_ok else 'MISSED'})",
        ]
        if lat.sigterm_log is not None:
            lines.append(f"  the ingester's log of that stop, kept: {lat.sigterm_log}")
    soak = report.soak
    if soak is not None:
        lines += [
            "",
            f"soak {soak.seconds:.0f}s at {_rate(soak.rate)}/s: RSS start "
            f"{soak.start_mib:.1f} MiB, end {soak.end_mib:.1f} MiB, max {soak.max_mib:.1f} MiB",
        ]
    for note in report.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
