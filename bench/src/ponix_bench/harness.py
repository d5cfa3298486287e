"""The benchmark run: local servers, pre-published envelopes, every contender timed in turn.

Everything a figure depends on is in the same run on the same messages: each contender reads
the whole stream through a durable consumer of its own (created paused, see :mod:`.watch`) and
writes a database of its own, so ratios to the raw pull protocol with as many processes
survive machine noise.
The contenders' order rotates from run to run, so a slow minute does not always hit the same
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Literal

import nats
from clickhouse_driver import Client
from nats.js import JetStreamContext

from ponix_bench.contenders import ContenderSpec
from ponix_bench.latency import measure_latency, measure_soak
from ponix_bench.procs import (
    Contender,
    Memory,
    clean_env,
    cpu_seconds,
    loop_times,
    machine_busy_seconds,
    memory,
    spawn,
)
from ponix_bench.publish import publish_all
from ponix_bench.report import ContenderResult, Report, Run
from ponix_bench.shipped import shipped_python
from ponix_bench.watch import ConsumerWatch, Window, create_paused
from ponix_clickhouse import migrate
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_devstack import LocalStack
from ponix_nats import consumer_config, ensure_jetstream

# The kinds --profile samples: the ingester, and raw to see what nats-py itself spends.
PROFILED = ("ponix", "raw")
# The ingester's own default, so that every contender asks for the same batch.
DEFAULT_BATCH: int = NatsSettings.model_fields["batch_size"].default
READY_TIMEOUT = 90.0


@dataclass(frozen=True, slots=True)
class Options:
    count: int = 100_000
    batch: int | None = None
    contenders: Sequence[ContenderSpec] = ()
    runs: int = 5
    latency: bool = True
    latency_seconds: float = 20.0
    latency_storage: Literal["file", "memory"] = "memory"
    """The latency phase's stream. nats-server with ``sync_interval: always`` (the devstack's,
    so that acked means on disk) stores only a few thousand messages/s on a small VM's disk:
    below half of what the ingester sustains, so a file stream would time the publisher."""
    soak_seconds: float = 0.0
    ingester_env: Mapping[str, str] = field(default_factory=dict)
    profile_dir: Path | None = None
    """Record a py-spy profile (raw collapsed stacks) of every ponix and raw contender here."""


Progress = Callable[[str], None]


def versions(stack: LocalStack) -> dict[str, str]:
    found = {
        "python": platform.python_version(),
        "nats-server": ".".join(map(str, stack.nats.version)),
        "clickhouse": ".".join(map(str, stack.clickhouse.version)),
    }
    for dist in ("nats-py", "clickhouse-driver", "protobuf", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[dist] = metadata.version(dist)
    return found


class Bench:
    """One benchmark over a started :class:`LocalStack`."""

    def __init__(self, stack: LocalStack, workdir: Path, options: Options, progress: Progress):
        self.stack = stack
        self.workdir = workdir
        self.options = options
        self.progress = progress
        # Built without reading the environment or a .env file: a NATS_* exported for `ponix run`
        # must not reshape the benchmark.
        self.nats_settings = NatsSettings.model_construct(url=stack.nats_url)
        self.ingester_python = sys.executable
        """The interpreter of every ingester the bench starts (:mod:`.shipped`)."""
        self.clickhouse_url = stack.clickhouse_url

    # -- helpers ------------------------------------------------------------------------------

    @property
    def latency_storage(self) -> Literal["file", "memory"]:
        return self.options.latency_storage

    def clickhouse_settings(self, database: str = "") -> ClickHouseSettings:
        return ClickHouseSettings.model_construct(
            url=self.clickhouse_url, database=database or "ponix"
        )

    def _query(self, sql: str) -> list[tuple[object, ...]]:
        client = Client.from_url(self.clickhouse_url)
        try:
            return [tuple(row) for row in client.execute(sql)]
        finally:
            client.disconnect()

    def ingester_env(
        self, consumer: str, database: str, extra: Mapping[str, str]
    ) -> dict[str, str]:
        env = {
            "NATS_URL": self.stack.nats_url,
            "NATS_CONSUMER": consumer,
            "CLICKHOUSE_URL": self.clickhouse_url,
            "CLICKHOUSE_DATABASE": database,
            "HTTP_ENABLED": "false",
            "LOG_LEVEL": "warning",
            "LOG_FORMAT": "json",
        }
        if self.options.batch is not None:
            env["NATS_BATCH_SIZE"] = str(self.options.batch)
        env.update(self.options.ingester_env)
        env.update(extra)
        return clean_env(env)

    async def _profile(
        self, spec: ContenderSpec, pids: list[int], run: int
    ) -> asyncio.subprocess.Process | None:
        out = self.options.profile_dir
        if out is None or spec.kind not in PROFILED:
            return None
        out.mkdir(parents=True, exist_ok=True)
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        return await asyncio.create_subprocess_exec(
            pyspy,
            "record",
            "--pid",
            str(pids[0]),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out / f"r{run}-{spec.slug}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    def _cpu(self, pids: list[int]) -> dict[str, float]:
        """CPU seconds so far: the contender's processes (``own`` = ``main`` + ``workers``),
        each server, and the whole machine (``machine``)."""
        servers = {"nats-server": self.stack.nats.pid, "clickhouse": self.stack.clickhouse.pid}
        main = cpu_seconds(pids, children=False)
        workers = cpu_seconds(pids, children=True)
        found = {"own": main + workers, "main": main, "workers": workers}
        for name, pid in servers.items():
            found[name] = cpu_seconds([pid]) if pid is not None else 0.0
        found["machine"] = machine_busy_seconds()
        return found

    # -- the run ------------------------------------------------------------------------------

    async def run(self) -> Report:
        options = self.options
        if any(spec.kind == "ponix" for spec in options.contenders):
            self.progress("installing the ingester as its image does")
            self.ingester_python, environment = await asyncio.to_thread(
                shipped_python, self.workdir
            )
        else:
            environment = "no ingester run"
        nc = await nats.connect(self.stack.nats_url, name="ponix-bench")
        try:
            js = nc.jetstream()
            await ensure_jetstream(js, self.nats_settings)
            self.progress(f"publishing {options.count:,} envelopes")
            publish_seconds = await publish_all(nc, self.nats_settings, options.count)
            info = await js.stream_info(self.nats_settings.stream)
            last_seq = info.state.last_seq
            report = Report(
                count=options.count,
                batch=options.batch or DEFAULT_BATCH,
                cores=os.cpu_count() or 0,
                versions={**versions(self.stack), "ingester environment": environment},
                publish_seconds=publish_seconds,
            )
            if info.state.messages != options.count:
                report.notes.append(
                    f"stream holds {info.state.messages} messages, not {options.count}"
                )
            specs = list(options.contenders)
            report.loadavg.append(os.getloadavg()[0])
            for index in range(options.runs):
                shift = index % len(specs)
                order = specs[shift:] + specs[:shift]
                results = _with_ratios(await self._run_once(js, order, index + 1, last_seq))
                results.sort(key=lambda r: [s.label for s in specs].index(r.contender))
                report.runs.append(Run(index + 1, results))
                self.progress(
                    "  "
                    + "  ".join(
                        f"{r.contender} {r.rate:,.0f}/s"
                        + (f" ({r.ratio:.2f} x {r.yardstick})" if r.ratio is not None else "")
                        for r in results
                    )
                )
            report.loadavg.append(os.getloadavg()[0])
            report.compute_medians()
            if not report.rows_ok:
                report.notes.append(
                    f"a contender's table did not hold exactly {options.count:,} distinct rows"
                )
            sustained = _sustained(report)
            if options.latency:
                if sustained is None:
                    report.notes.append("latency skipped: no ponix contender to take the rate from")
                else:
                    self.progress(f"latency at {sustained / 2:,.0f}/s")
                    report.latency = await measure_latency(
                        self, nc, sustained, options.latency_seconds, limit=options.count
                    )
            if options.soak_seconds > 0 and sustained is not None:
                self.progress(f"soak for {options.soak_seconds:g}s at {sustained / 2:,.0f}/s")
                report.soak = await measure_soak(self, nc, sustained, options.soak_seconds)
            return report
        finally:
            await nc.close()

    async def _run_once(
        self, js: JetStreamContext, order: Sequence[ContenderSpec], run: int, last_seq: int
    ) -> list[ContenderResult]:
        """Each contender in turn. The next one starts up while the last one stops and is
        counted, but is timed only once the last one is gone."""
        results: list[ContenderResult] = []
        finishing: asyncio.Task[ContenderResult] | None = None
        try:
            for spec in order:
                self.progress(f"run {run}/{self.options.runs}: {spec.label}")
                started = await self._start(js, spec, run)
                if finishing is not None:
                    results.append(await finishing)
                    finishing = None
                measured = await self._measure(started, last_seq)
                finishing = asyncio.ensure_future(self._finish(js, measured))
            if finishing is not None:
                results.append(await finishing)
                finishing = None
        finally:
            if finishing is not None:
                await asyncio.wait({finishing})
        return results

    async def _start(self, js: JetStreamContext, spec: ContenderSpec, run: int) -> _Started:
        """Consumer (paused), table, processes; returns once they all wait for messages."""
        name = f"bench_r{run}_{spec.slug}"
        stream = self.nats_settings.stream
        settings = self.nats_settings.model_copy(update={"consumer": name})
        await create_paused(js, stream, consumer_config(settings))
        if spec.writes_rows:
            await asyncio.to_thread(migrate, self.clickhouse_settings(name))
        env = (
            self.ingester_env(name, name, spec.ingester_env)
            if spec.kind == "ponix"
            else clean_env({})
        )
        argvs = spec.argv(
            nats_url=self.stack.nats_url,
            stream=stream,
            consumer=name,
            batch=self.options.batch or DEFAULT_BATCH,
            clickhouse_url=self.clickhouse_url,
            database=name,
            ingester_python=self.ingester_python,
        )
        contender = await spawn(f"r{run}-{spec.slug}", argvs, env, self.workdir)
        try:
            watch = ConsumerWatch(js, stream, name)
            await watch.wait_waiting(spec.processes, READY_TIMEOUT, contender.check_alive)
        except BaseException:
            await contender.stop()
            raise
        return _Started(spec, run, name, contender, watch)

    async def _measure(self, started: _Started, last_seq: int) -> _Measured:
        contender = started.contender
        profiler: asyncio.subprocess.Process | None = None
        try:
            idle = memory(contender.pids, "VmRSS")
            profiler = await self._profile(started.spec, contender.pids, started.run)
            cpu_before = self._cpu(contender.pids)
            loops_before = loop_times(contender.pids)
            sampled_at = time.monotonic()
            await started.watch.resume()
            began = await started.watch.wait_delivering(READY_TIMEOUT, contender.check_alive)
            window = await started.watch.wait_acked(
                last_seq, began, 120.0 + self.options.count / 500, contender.check_alive
            )
            peak = memory(contender.pids, "VmHWM")
            cpu_after = self._cpu(contender.pids)
            loops_after = loop_times(contender.pids)
            sampled_seconds = time.monotonic() - sampled_at
        except BaseException:
            await contender.stop()
            raise
        finally:
            if profiler is not None:
                await _stop_profiler(profiler)
        self.progress(f"  {started.spec.label}: {self.options.count / window.seconds:,.0f}/s")
        used = {k: cpu_after[k] - cpu_before[k] for k in cpu_before}
        machine = used.pop("machine")
        others = machine - used["own"] - used["nats-server"] - used["clickhouse"]
        cpu = {k: round(v * 1e6 / self.options.count, 1) for k, v in used.items()}
        others_cores = round(max(0.0, others) / max(sampled_seconds, 1e-6), 2)
        # Per event loop, a share of the window from the first delivery to the last ack (the
        # loops idle before and after it), so two processes read like one.
        loop_seconds = max(window.seconds, 1e-6) * max(len(contender.pids), 1)
        loop_on_core = round((loops_after.on_core - loops_before.on_core) / loop_seconds, 3)
        loop_queued = round((loops_after.queued - loops_before.queued) / loop_seconds, 3)
        return _Measured(started, window, idle, peak, cpu, others_cores, loop_on_core, loop_queued)

    async def _finish(self, js: JetStreamContext, measured: _Measured) -> ContenderResult:
        """Stop the processes, count the table's rows, drop it and the consumer."""
        started = measured.started
        spec, name = started.spec, started.name
        stop_seconds, codes = await started.contender.stop()
        distinct: int | None = None
        rows: int | None = None
        if spec.writes_rows:
            got = await asyncio.to_thread(
                self._query, f"SELECT uniqExact(id), count() FROM `{name}`.`processed_envelopes`"
            )
            distinct, rows = int(str(got[0][0])), int(str(got[0][1]))
            await asyncio.to_thread(self._query, f"DROP DATABASE IF EXISTS `{name}`")
        await js.delete_consumer(self.nats_settings.stream, name)
        window = measured.window
        return ContenderResult(
            contender=spec.label,
            base=spec.base,
            processes=spec.processes,
            rate=self.options.count / max(window.seconds, 1e-6),
            seconds=window.seconds,
            yardstick=spec.yardstick,
            ratio=None,
            cpu_ratio=None,
            distinct_rows=distinct,
            rows=rows,
            peak_rss_mib=measured.peak.largest_mib,
            peak_rss_total_mib=measured.peak.total_mib,
            idle_rss_mib=measured.idle.largest_mib,
            stop_seconds=stop_seconds,
            exit_codes=codes,
            redelivered=window.redelivered,
            cpu_us_per_msg=measured.cpu,
            others_cores=measured.others_cores,
            loop_on_core=measured.loop_on_core,
            loop_queued=measured.loop_queued,
        )


@dataclass(frozen=True, slots=True)
class _Started:
    spec: ContenderSpec
    run: int
    name: str
    contender: Contender
    watch: ConsumerWatch


@dataclass(frozen=True, slots=True)
class _Measured:
    started: _Started
    window: Window
    idle: Memory
    peak: Memory
    cpu: dict[str, float]
    others_cores: float
    loop_on_core: float
    loop_queued: float


async def _stop_profiler(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    await proc.wait()


def _with_ratios(results: list[ContenderResult]) -> list[ContenderResult]:
    """Each result's rate over its yardstick's in the same run, and the yardstick's own CPU per
    envelope over its own."""
    by_name = {r.contender: r for r in results}
    found: list[ContenderResult] = []
    for result in results:
        yardstick = by_name.get(result.yardstick)
        if yardstick is None:
            found.append(result)
            continue
        own = result.cpu_us_per_msg.get("own", 0.0)
        found.append(
            replace(
                result,
                ratio=result.rate / yardstick.rate,
                cpu_ratio=yardstick.cpu_us_per_msg.get("own", 0.0) / own if own else None,
            )
        )
    return found


def _sustained(report: Report) -> float | None:
    rate = report.median_rate("ponix")
    if rate is not None:
        return rate
    for median in report.medians:
        if median.base == "ponix":
            return median.rate
    return None


async def run_bench(
    stack: LocalStack, workdir: Path, options: Options, progress: Progress
) -> Report:
    return await Bench(stack, workdir, options, progress).run()
