"""Black-box helpers for tests that run the real pipeline: services as child processes, driven
only through their environment, observed only through NATS, ClickHouse, logs and ``/metrics``.

Three pieces, used together::

    pipeline = Pipeline.isolated(
        nats_url=nats_url, clickhouse_url=clickhouse_url, unique=unique, database=clickhouse_db
    )
    async with PipelineClient.connect(pipeline) as client, ServiceLauncher(tmp_path) as launch:
        ingester = await launch.start(pipeline)                 # python -m ponix_ingester
        ledger = await client.publish_synthetic(1000)           # ids that got a PubAck
        await client.wait_until_drained(within=30)              # num_pending == ack_pending == 0
        counts = await client.counts()                          # count()/uniqExact(id) FINAL
        assert counts.rows == counts.distinct_ids == len(ledger)
        assert await client.dead_letters() == []
        exit_ = await ingester.terminate()                      # SIGTERM, then SIGKILL at timeout
        assert exit_.code == 0
        await client.delete_streams()

* :class:`Pipeline`: one test's names (stream, subjects, consumer, DLQ, database) and env vars, as
  settings objects for the test process and as the environment of a child service.
* :class:`ServiceLauncher` / :class:`ServiceProcess`: a service started with that environment;
  its JSON log lines (awaitable: ``wait_for_log``), its ``/metrics``, SIGTERM/SIGKILL, exit code.
* :class:`PipelineClient`: publishes (synthetic envelopes or raw payloads, with a :class:`Ledger`
  of PubAcks) and reads the state: consumer info, exact counts, stored rows, dead letters.

Waiting: a child's log line is an event (the reader wakes the waiters). Server state (consumer
info, row counts) has no event to wait on, so :func:`eventually` polls it at a short interval
against one monotonic deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, Self, TypeVar

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo
from prometheus_client.parser import text_string_to_metric_families
from pydantic_settings import BaseSettings

from ponix_clickhouse import make_client
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_devstack import free_port
from ponix_ingester import IngesterSettings
from ponix_nats import (
    DeadLetter,
    EnvelopeProducer,
    PublishAck,
    PublishError,
    connect,
    ensure_jetstream,
    list_dead_letters,
)
from ponix_producer import OutgoingEnvelope, SyntheticEnvelopes
from ponix_proto import pb

__all__ = (
    "READY_EVENT",
    "SERVICE_MODULES",
    "Exit",
    "Ledger",
    "LogLine",
    "Metrics",
    "Pipeline",
    "PipelineClient",
    "Published",
    "ServiceExitedError",
    "ServiceLauncher",
    "ServiceName",
    "ServiceProcess",
    "StoredRow",
    "TableCounts",
    "envelope",
    "eventually",
)

T = TypeVar("T")

ServiceName = Literal["ingester", "all-in-one", "producer"]
SERVICE_MODULES: Final[Mapping[ServiceName, str]] = {
    "ingester": "ponix_ingester",
    "all-in-one": "ponix_all_in_one",
    "producer": "ponix_producer",
}
READY_EVENT: Final = "service started"
"""Logged by ``ponix_service.serve`` once start-up is done: migrations applied, stream and
consumer provisioned, processes about to run. Messages published after it are consumed."""

# Variables a child must not inherit from the shell that runs pytest: the pipeline's env is
# the whole truth (a NATS_URL exported for `ponix run` must never reach a test's service).
_STRIPPED_PREFIXES: Final = (
    "NATS_",
    "CLICKHOUSE_",
    "INGESTER_",
    "PRODUCER_",
    "PONIX_",
    "LOG_",
    "HTTP_",
)
_POLL_EVERY: Final = 0.05
_READ_LIMIT: Final = 1 << 20
_PR_SET_PDEATHSIG: Final = 1


async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    within: float,
    what: str,
    every: float = _POLL_EVERY,
) -> T:
    """Await ``check()`` until it returns something truthy, and return that.

    For server state only (consumer info, row counts): there is no event to wait on. One
    monotonic deadline; on expiry, ``AssertionError`` names ``what`` and the last value seen.
    """
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            msg = f"not within {within:g}s: {what} (last: {value!r})"
            raise AssertionError(msg)
        await asyncio.sleep(every)


# --------------------------------------------------------------------------------------------
# One test's pipeline: names and environment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The environment of one test's pipeline: every name is the test's own.

    ``env`` maps documented variable names (``NATS_STREAM``, ``CLICKHOUSE_BATCH_MAX_ROWS``,
    ``INGESTER_MAX_ENVELOPE_BYTES``, ...) to values. Services get exactly this (plus per-process
    ``HTTP_*``); the test process reads it back as settings objects (``.nats``, ...).
    """

    env: Mapping[str, str]

    @classmethod
    def isolated(
        cls,
        *,
        nats_url: str,
        clickhouse_url: str,
        unique: str,
        database: str | None = None,
        **env: object,
    ) -> Pipeline:
        """Names derived from ``unique`` (the conftest fixture), so tests can share servers.

        ``database`` defaults to ``test_<unique>`` (the ingester's migration creates it; pass
        the ``clickhouse_db`` fixture to have it dropped after the test). ``env`` overrides or
        adds variables, e.g. ``NATS_ACK_WAIT=2``.
        """
        base: dict[str, object] = {
            "NATS_URL": nats_url,
            "NATS_STREAM": f"S_{unique}",
            "NATS_SUBJECT_PREFIX": f"env_{unique}",
            "NATS_CONSUMER": f"c_{unique}",
            "NATS_DLQ_STREAM": f"S_{unique}_DLQ",
            "NATS_DLQ_SUBJECT": f"dlq_{unique}",
            # Test streams must not outlive a crashed run by a week.
            "NATS_MAX_AGE": 3600,
            "NATS_DLQ_MAX_AGE": 3600,
            "CLICKHOUSE_URL": clickhouse_url,
            "CLICKHOUSE_DATABASE": database or f"test_{unique}",
            # A service that cannot reach its servers fails the test in seconds, not minutes.
            "INGESTER_STARTUP_DEADLINE": 20,
            "PRODUCER_STARTUP_DEADLINE": 20,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
        }
        base.update(env)
        return cls(_stringify(base))

    def with_env(self, **env: object) -> Pipeline:
        """A copy with variables added or replaced; a value of ``None`` removes one."""
        merged = dict(self.env)
        for name, value in env.items():
            if value is None:
                merged.pop(name, None)
            else:
                merged[name] = _text(value)
        return replace(self, env=merged)

    @property
    def nats(self) -> NatsSettings:
        return _settings(NatsSettings, self.env)

    @property
    def clickhouse(self) -> ClickHouseSettings:
        return _settings(ClickHouseSettings, self.env)

    @property
    def ingester(self) -> IngesterSettings:
        return _settings(IngesterSettings, self.env)

    @property
    def database(self) -> str:
        return self.clickhouse.database

    @property
    def table(self) -> str:
        """``database.table``, backquoted, for ad-hoc SQL."""
        ch = self.clickhouse
        return f"`{ch.database}`.`{ch.table}`"

    def process_env(self, **extra: object) -> dict[str, str]:
        """The complete environment of a child service: this process's, minus every Ponix
        variable, plus ``env``, plus ``extra``."""
        child = {
            k: v for k, v in os.environ.items() if not k.upper().startswith(_STRIPPED_PREFIXES)
        }
        child.update(self.env)
        child.update(_stringify(extra))
        child["PYTHONUNBUFFERED"] = "1"
        return child


S = TypeVar("S", bound=BaseSettings)


def _settings(cls: type[S], env: Mapping[str, str]) -> S:
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    fields = set(cls.model_fields)
    values = {
        name[len(prefix) :].lower(): value
        for name, value in env.items()
        if name.upper().startswith(prefix) and name[len(prefix) :].lower() in fields
    }
    return cls(**values)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stringify(values: Mapping[str, object]) -> dict[str, str]:
    return {name: _text(value) for name, value in values.items() if value is not None}


# --------------------------------------------------------------------------------------------
# Services as child processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line a service wrote: parsed JSON when it is (``LOG_FORMAT=json``), else raw text."""

    text: str
    fields: Mapping[str, Any]

    @property
    def event(self) -> str:
        return str(self.fields.get("message", ""))

    @property
    def level(self) -> str:
        return str(self.fields.get("level", ""))

    def matches(self, event: str, fields: Mapping[str, object]) -> bool:
        return self.event == event and all(self.fields.get(k) == v for k, v in fields.items())


@dataclass(frozen=True, slots=True)
class Exit:
    """How a service ended: its exit code (negative: killed by that signal) and how long it took
    from the signal we sent (0.0 when it had already exited)."""

    code: int
    seconds: float
    forced: bool = False
    """True when it ignored SIGTERM past the timeout and was SIGKILLed."""


class ServiceExitedError(AssertionError):
    """The service exited while the test waited for something from it."""


@dataclass(frozen=True, slots=True)
class Metrics:
    """One scrape of a service's ``/metrics``."""

    samples: tuple[tuple[str, Mapping[str, str], float], ...]

    @classmethod
    def parse(cls, text: str) -> Metrics:
        return cls(
            tuple(
                (sample.name, dict(sample.labels), float(sample.value))
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples called ``name`` (counters: ``ponix_envelopes_acked_total``) whose
        labels include ``labels``; 0.0 when there are none."""
        return sum(
            value
            for sample, have, value in self.samples
            if sample == name and all(have.get(k) == v for k, v in labels.items())
        )


class ServiceProcess:
    """A Ponix service running as a child process (``python -m ponix_<service>``).

    stdout and stderr go to ``log_path`` and to :attr:`lines`; ``/metrics`` is served on
    :attr:`http_port`. Use it through :class:`ServiceLauncher`, which also cleans up.
    """

    def __init__(
        self,
        name: str,
        service: ServiceName,
        env: Mapping[str, str],
        *,
        workdir: Path,
        http_port: int,
    ) -> None:
        self.name = name
        self.service = service
        self.env = dict(env)
        self.workdir = workdir
        self.http_port = http_port
        self.log_path = workdir / f"{name}.log"
        self.lines: list[LogLine] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._eof = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def spawn(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # cwd is the test's own directory: no stray .env file is read by the service.
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            SERVICE_MODULES[self.service],
            env=self.env,
            cwd=self.workdir,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            limit=_READ_LIMIT,
            start_new_session=True,
            preexec_fn=_die_with_parent(os.getpid()),
        )
        self._reader = asyncio.create_task(self._read(self._proc.stdout))
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """None while running."""
        return self._process.returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def wait_ready(self, *, within: float = 30.0, event: str = READY_EVENT) -> LogLine:
        """Wait for the service's ready log line (see :data:`READY_EVENT`)."""
        return await self.wait_for_log(event, within=within)

    async def terminate(self, *, kill_after: float = 10.0) -> Exit:
        """SIGTERM, then wait up to ``kill_after`` seconds; SIGKILL after that (``forced``)."""
        return await self._stop(signal.SIGTERM, kill_after)

    async def kill(self) -> Exit:
        """SIGKILL: no closer runs, nothing in flight is acked (a crash)."""
        return await self._stop(signal.SIGKILL, 10.0)

    async def wait(self, *, within: float) -> Exit:
        """Wait for the service to exit by itself."""
        started = time.monotonic()
        async with asyncio.timeout(within):
            code = await self._process.wait()
        await self._finish_reading()
        return Exit(code, time.monotonic() - started)

    async def close(self) -> None:
        """Kill it if still running and release the pipes; idempotent."""
        if self._proc is None:
            return
        if self._proc.returncode is None:
            await self.kill()
        await self._finish_reading()

    async def _stop(self, sig: signal.Signals, kill_after: float) -> Exit:
        proc = self._process
        if proc.returncode is not None:
            await self._finish_reading()
            return Exit(proc.returncode, 0.0)
        started = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        forced = False
        try:
            async with asyncio.timeout(kill_after):
                code = await proc.wait()
        except TimeoutError:
            forced = True
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        seconds = time.monotonic() - started
        await self._finish_reading()
        return Exit(code, seconds, forced)

    # -- logs -----------------------------------------------------------------------------------

    def events(self, event: str, **fields: object) -> list[LogLine]:
        """The log lines so far whose ``event`` is ``event`` and whose fields include ``fields``."""
        return [line for line in self.lines if line.matches(event, fields)]

    async def wait_for_log(
        self, event: str, *, within: float, count: int = 1, **fields: object
    ) -> LogLine:
        """Wait until ``count`` lines match (see :meth:`events`); return the last of them.

        Raises :class:`ServiceExitedError` (with the log tail) if the service exits first.
        """

        def found() -> bool:
            return len(self.events(event, **fields)) >= count or self._eof

        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(found)
        except TimeoutError:
            msg = f"{self.name}: no {event!r} log line within {within:g}s\n{self.tail()}"
            raise AssertionError(msg) from None
        matching = self.events(event, **fields)
        if len(matching) < count:
            await self._process.wait()
            msg = (
                f"{self.name} exited with {self.returncode} before logging {event!r}\n{self.tail()}"
            )
            raise ServiceExitedError(msg)
        return matching[-1]

    def tail(self, lines: int = 30) -> str:
        return "\n".join(line.text for line in self.lines[-lines:])

    async def _read(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        with self._open_log() as log:
            while True:
                raw = await stream.readline()
                if not raw:
                    break
                text = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(text + "\n")
                log.flush()
                async with self._changed:
                    self.lines.append(LogLine(text, _json_fields(text)))
                    self._changed.notify_all()
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    def _open_log(self) -> IO[str]:
        return self.log_path.open("a", encoding="utf-8")

    async def _finish_reading(self) -> None:
        if self._reader is not None:
            await self._reader

    # -- metrics --------------------------------------------------------------------------------

    async def metrics(self) -> Metrics:
        """Scrape ``/metrics`` now (the service must be running)."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"

        def scrape() -> str:
            with urllib.request.urlopen(url, timeout=5) as answer:
                return str(answer.read().decode("utf-8"))

        return Metrics.parse(await asyncio.to_thread(scrape))

    @property
    def _process(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            msg = f"{self.name} was never spawned"
            raise RuntimeError(msg)
        return self._proc

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc is not None else None
        code = self._proc.returncode if self._proc is not None else None
        return f"ServiceProcess({self.name!r}, pid={pid}, returncode={code})"


class ServiceLauncher:
    """Starts services for one test and stops every one of them when the block ends.

    ``async with ServiceLauncher(tmp_path) as launch: ingester = await launch.start(pipeline)``
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[ServiceProcess] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(
        self,
        pipeline: Pipeline,
        *,
        service: ServiceName = "ingester",
        name: str | None = None,
        ready: bool = True,
        within: float = 30.0,
        **env: object,
    ) -> ServiceProcess:
        """Spawn ``service`` with ``pipeline``'s environment plus ``env`` (e.g.
        ``PONIX_PROCESSES="ingester"`` for the all-in-one), on a free ``HTTP_PORT``.

        With ``ready`` (default), returns once it logged :data:`READY_EVENT`.
        """
        name = name or f"{service}-{len(self.started) + 1}"
        port = free_port()
        process = ServiceProcess(
            name,
            service,
            pipeline.process_env(HTTP_HOST="127.0.0.1", HTTP_PORT=port, **env),
            workdir=self.workdir / "services",
            http_port=port,
        )
        self.started.append(process)
        await process.spawn()
        if ready:
            await process.wait_ready(within=within)
        return process

    async def close(self) -> None:
        for process in reversed(self.started):
            await process.close()


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec_fn: SIGKILL the service if pytest dies, so no ingester outlives its run."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong]

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _json_fields(text: str) -> Mapping[str, Any]:
    if not text.startswith("{"):
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# --------------------------------------------------------------------------------------------
# Publishing, with a ledger
# --------------------------------------------------------------------------------------------


def envelope(
    *,
    envelope_id: str | None = None,
    organization_id: str = "acme",
    end_device_id: str | None = "device-1",
    occurred_at: datetime | int | Literal["now"] | None = "now",
    processed_at: datetime | int | Literal["now"] | None = "now",
    data: Mapping[str, Any] | None = None,
) -> pb.ProcessedEnvelope:
    """A hand-made envelope (upb message; ``.SerializeToString()`` for its bytes).

    Timestamps are an aware ``datetime``, epoch seconds (any int: out of range on purpose if
    you like) or ``"now"`` (the default); ``None`` leaves the field unset. ``envelope_id=None``
    leaves ``id`` empty, as seed-era producers send it.
    """
    now = datetime.now(UTC)
    env = pb.ProcessedEnvelope(organization_id=organization_id)
    if envelope_id is not None:
        env.id = envelope_id
    if end_device_id is not None:
        env.end_device_id = end_device_id
    for name, value in (("occurred_at", occurred_at), ("processed_at", processed_at)):
        if value == "now":
            value = now
        if isinstance(value, datetime):
            getattr(env, name).FromDatetime(value)
        elif isinstance(value, int):
            getattr(env, name).seconds = value
    env.data.update(dict(data if data is not None else {"temperature": 21.5, "door_open": False}))
    return env


@dataclass(frozen=True, slots=True)
class Published:
    """One message JetStream acknowledged."""

    msg_id: str | None
    """Its ``Nats-Msg-Id`` (the envelope id for synthetic envelopes); None when sent without."""
    subject: str
    payload: bytes
    ack: PublishAck


@dataclass
class Ledger:
    """What a publish run got PubAcks for, and what failed (``msg_id`` -> reason)."""

    published: list[Published] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.published)

    @property
    def ids(self) -> set[str]:
        """``Nats-Msg-Id`` of every stored (acked, not duplicate) message."""
        return {p.msg_id for p in self.published if p.msg_id is not None and not p.ack.duplicate}

    @property
    def stored(self) -> list[Published]:
        """Messages JetStream stored (a duplicate's PubAck points at the original)."""
        return [p for p in self.published if not p.ack.duplicate]

    @property
    def duplicates(self) -> list[Published]:
        return [p for p in self.published if p.ack.duplicate]

    def extend(self, other: Ledger) -> None:
        self.published.extend(other.published)
        self.failed.update(other.failed)


# --------------------------------------------------------------------------------------------
# The test's own client of the pipeline: publish, then read the state
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TableCounts:
    """Exact reads of the envelope table."""

    rows: int
    """``count()`` with FINAL: rows after replacing (what a reader sees)."""
    distinct_ids: int
    """``uniqExact(id)`` with FINAL."""
    physical_rows: int
    """``count()`` without FINAL: duplicates not merged away yet are counted here."""


@dataclass(frozen=True, slots=True)
class StoredRow:
    """One row of the envelope table; timestamps are aware UTC datetimes (whole seconds on
    ClickHouse 18.16's DateTime, milliseconds on DateTime64(3)), ``data`` is the parsed JSON."""

    id: str
    organization_id: str
    end_device_id: str
    occurred_at: datetime
    processed_at: datetime
    data: Any


def _aware(value: datetime) -> datetime:
    # clickhouse-driver returns DateTime('UTC') naive or aware depending on its version.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class PipelineClient:
    """A NATS connection and ClickHouse access for one :class:`Pipeline`.

    ``async with PipelineClient.connect(pipeline) as client:``. It never provisions anything:
    the service under test does (pass ``provision=True`` to publish before one started).
    """

    def __init__(self, pipeline: Pipeline, nc: NatsClient) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.nats
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=5.0)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, pipeline: Pipeline, *, provision: bool = False
    ) -> AsyncIterator[PipelineClient]:
        nc = await connect(pipeline.nats, name="ponix-tests")
        try:
            client = cls(pipeline, nc)
            if provision:
                await client.provision()
            yield client
        finally:
            await nc.close()

    async def provision(self) -> None:
        """Create the streams and the consumer as the services would (to publish a backlog
        before any service started)."""
        await ensure_jetstream(self.js, self.settings)

    # -- publishing -----------------------------------------------------------------------------

    async def publish_synthetic(
        self,
        count: int,
        *,
        rate: float | None = None,
        concurrency: int = 256,
        organizations: int = 3,
        devices: int = 10,
        seed: int | None = None,
        ack_timeout: float = 10.0,
    ) -> Ledger:
        """Publish ``count`` synthetic envelopes (each with its id as ``Nats-Msg-Id``).

        ``rate`` (envelopes/s) paces them, for "while messages flow" tests. A publish without
        a PubAck within ``ack_timeout`` (resent meanwhile under the same ``Nats-Msg-Id``, as
        ``EnvelopeProducer`` does) is recorded in ``Ledger.failed`` instead of raising.
        """
        fleet = SyntheticEnvelopes(organizations=organizations, devices=devices, seed=seed)
        return await self.publish_envelopes(
            (fleet.next() for _ in range(count)),
            rate=rate,
            concurrency=concurrency,
            ack_timeout=ack_timeout,
        )

    async def publish_envelopes(
        self,
        envelopes: Iterable[OutgoingEnvelope],
        *,
        rate: float | None = None,
        concurrency: int = 256,
        ack_timeout: float = 10.0,
    ) -> Ledger:
        """Publish prepared envelopes concurrently; see :meth:`publish_synthetic`."""
        ledger = Ledger()
        producer = EnvelopeProducer(
            self.nc, self.settings, max_in_flight=concurrency, ack_timeout=ack_timeout
        )
        source = iter(envelopes)
        started = time.monotonic()
        sent = 0

        async def worker() -> None:
            nonlocal sent
            for envelope in source:
                if rate is not None:
                    due = started + sent / rate
                    sent += 1
                    # Pacing a publisher, not waiting for a state: a sleep is the point here.
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                subject = self.settings.subject_for(envelope.organization_id)
                try:
                    ack = await producer.publish(
                        envelope.payload, msg_id=envelope.envelope_id, subject=subject
                    )
                except PublishError as exc:
                    ledger.failed[envelope.envelope_id] = str(exc)
                    continue
                ledger.published.append(
                    Published(envelope.envelope_id, subject, envelope.payload, ack)
                )

        try:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(concurrency):
                    tasks.create_task(worker())
        finally:
            await producer.close()
        return ledger

    async def publish_raw(
        self,
        payload: bytes,
        *,
        msg_id: str | None = None,
        organization_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Published:
        """Publish any bytes on ``<prefix>.<organization_id>`` (default: the envelope's own
        organization, or ``acme`` for bytes that are no envelope); ``msg_id=None`` sends no
        ``Nats-Msg-Id`` (as seed-era producers did). Raises on a JetStream error."""
        if organization_id is None:
            try:
                organization_id = pb.ProcessedEnvelope.FromString(payload).organization_id
            except pb.DecodeError:
                organization_id = "acme"
        subject = self.settings.subject_for(organization_id)
        sent = dict(headers or {})
        if msg_id is not None:
            sent["Nats-Msg-Id"] = msg_id
        ack = await self.js.publish(
            subject, payload, headers=sent or None, stream=self.settings.stream
        )
        return Published(
            msg_id, subject, payload, PublishAck(ack.stream, ack.seq, bool(ack.duplicate))
        )

    # -- NATS state ------------------------------------------------------------------------------

    async def consumer_info(self, consumer: str | None = None) -> ConsumerInfo:
        info: ConsumerInfo = await self.js.consumer_info(
            self.settings.stream, consumer or self.settings.consumer
        )
        return info

    async def stream_info(self, stream: str | None = None) -> StreamInfo:
        info: StreamInfo = await self.js.stream_info(stream or self.settings.stream)
        return info

    async def wait_until_drained(
        self, *, within: float = 30.0, consumer: str | None = None
    ) -> ConsumerInfo:
        """Wait until the consumer has nothing pending and nothing awaiting an ack (a message
        nakked with a delay still awaits one): every message published so far was acked or
        termed. Returns that consumer info; call it after publishing."""

        async def drained() -> ConsumerInfo | None:
            try:
                info = await self.consumer_info(consumer)
            except nats.js.errors.NotFoundError:
                return None  # not provisioned yet: the service is still starting
            return info if info.num_pending == 0 and info.num_ack_pending == 0 else None

        name = consumer or self.settings.consumer
        return await eventually(
            drained, within=within, what=f"consumer {name} drained (0 pending, 0 ack pending)"
        )

    async def dead_letters(self, limit: int = 10_000) -> list[DeadLetter]:
        """Every dead letter of the pipeline's DLQ stream, oldest first."""
        return await list_dead_letters(self.js, self.settings, limit)

    async def delete_streams(self) -> None:
        """Delete the envelope and DLQ streams (with the consumer); for test teardown."""
        for stream in (self.settings.stream, self.settings.dlq_stream):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await self.js.delete_stream(stream)

    # -- ClickHouse state -------------------------------------------------------------------------

    async def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        """Run one statement against the pipeline's ClickHouse (a fresh connection each time,
        so a server restart between calls does not matter)."""

        def run() -> list[tuple[Any, ...]]:
            client = make_client(self.pipeline.clickhouse, database="")
            try:
                return [tuple(row) for row in client.execute(sql, params)]
            finally:
                client.disconnect()

        return await asyncio.to_thread(run)

    async def counts(self) -> TableCounts:
        """``count()`` and ``uniqExact(id)`` with FINAL, and ``count()`` without."""
        table = self.pipeline.table
        [(rows, distinct)] = await self.query(f"SELECT count(), uniqExact(id) FROM {table} FINAL")
        [(physical,)] = await self.query(f"SELECT count() FROM {table}")
        return TableCounts(int(rows), int(distinct), int(physical))

    async def stored_ids(self) -> set[str]:
        return {
            str(row[0]) for row in await self.query(f"SELECT id FROM {self.pipeline.table} FINAL")
        }

    async def stored_rows(self) -> dict[str, StoredRow]:
        """Every row, read with FINAL, by id."""
        rows = await self.query(
            "SELECT id, organization_id, end_device_id, occurred_at, processed_at, data "
            f"FROM {self.pipeline.table} FINAL"
        )
        return {
            str(envelope_id): StoredRow(
                str(envelope_id),
                org,
                device,
                _aware(occurred),
                _aware(processed),
                json.loads(data),
            )
            for envelope_id, org, device, occurred, processed, data in rows
        }

    async def column_type(self, column: str) -> str:
        """The table's column type, e.g. ``DateTime('UTC')`` on 18.16, ``DateTime64(3, 'UTC')``."""
        ch = self.pipeline.clickhouse
        [(kind,)] = await self.query(
            "SELECT type FROM system.columns "
            "WHERE database = %(db)s AND table = %(table)s AND name = %(column)s",
            {"db": ch.database, "table": ch.table, "column": column},
        )
        return str(kind)
