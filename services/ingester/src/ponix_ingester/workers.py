"""The ingester's side of its worker processes (``INGESTER_WORKERS`` >= 1).

:class:`WorkerPool` is the consumer's processor: each fetched batch's payloads (with each
message's ``Nats-Msg-Id`` and reply subject, for envelopes without an id) go down a pipe to the
least busy worker, and its ``ProcessingResult`` comes back; the event loop only pays for three
list comprehensions and a pickle per batch. Backpressure crosses the pipe too: a worker whose
writer is full or backing off says so with each answer, and :meth:`WorkerPool.ready` waits
until one accepts again.

Supervision: ``run`` is a runner process that fails when a worker exits before shutdown, so the
runner stops the service (exit code 1); that worker's batches fail and are nakked, never acked.
``close`` (a closer, after the consumer has returned) closes each worker's stdin and waits for
it to flush, answer and exit.

Metrics: the writers count in the workers; each sends what changed in its writer metrics (with
each answer, and every second), and the pool adds that to this process's writer metrics, which
therefore never go backwards (:mod:`ponix_ingester.worker_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
from collections.abc import Sequence
from typing import Any, Final

from nats.aio.msg import Msg

from ponix_ingester.pipe import (
    ACCEPTING,
    BATCH,
    DONE,
    FLUSH,
    METRICS,
    UP,
    WorkerConfig,
    read_frame,
    write_frame,
)
from ponix_ingester.worker_metrics import MetricsSink, Report
from ponix_nats import ProcessingResult
from ponix_proto import MSG_ID_HEADER
from ponix_runner import Deadline
from ponix_telemetry import get_logger

log = get_logger(__name__)

# A module nothing imports: ``python -m`` on one the package has already imported makes runpy
# warn ("found in sys.modules after import of package") and run a second copy of it.
WORKER_COMMAND: Final = (sys.executable, "-m", "ponix_ingester.worker_main")
_STOP_TIMEOUT: Final = 4.0
# This process's writer metrics count every worker's, of every pool (they are process-wide).
_METRICS: Final = MetricsSink()


class WorkerError(Exception):
    """A worker could not start, or died; the batches it held are nakked."""

    code = "ingester.worker_failed"


class _Worker:
    """One worker process and the batches it holds."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None
        assert proc.stdout is not None
        self.index = index
        self.proc = proc
        self.stdin = proc.stdin
        self.stdout = proc.stdout
        self.pending: dict[int, asyncio.Future[object]] = {}
        self.pending_messages = 0
        self.accepting = asyncio.Event()
        self.accepting.set()
        self.reader: asyncio.Task[None] | None = None
        self.closing = False

    @property
    def name(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"

    async def handshake(self, config: WorkerConfig, deadline: Deadline) -> None:
        write_frame(self.stdin, config)
        try:
            async with asyncio.timeout(max(deadline.remaining(), 0.1)):
                await self.stdin.drain()
                frame = await read_frame(self.stdout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            code = self.proc.returncode
            why = f"exited with {code}" if code is not None else "did not start in time"
            raise WorkerError(f"{self.name} {why} (its log is on stderr)") from None
        if frame != (UP,):
            raise WorkerError(f"{self.name} answered {frame!r} instead of {UP!r}")
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await read_frame(self.stdout)
                kind = frame[0]
                if kind == DONE:
                    _, batch_id, outcome, accepting = frame
                    future = self.pending.pop(batch_id, None)
                    if future is not None and not future.done():
                        future.set_result(outcome)
                    if accepting:
                        self.accepting.set()
                    else:
                        self.accepting.clear()
                elif kind == ACCEPTING:
                    self.accepting.set()
                elif kind == METRICS:
                    self._count(frame[1:])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            _METRICS.forget(self)
            self._fail_pending()

    def _count(self, report: Report) -> None:
        try:
            _METRICS.apply(self, report)
        except Exception:  # metrics never stop the batches
            log.exception("worker metrics not counted", worker=self.name)

    def _fail_pending(self) -> None:
        why = "closed" if self.closing else "exited"
        error = WorkerError(f"{self.name} {why} before storing the batch")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)
        self.pending.clear()
        self.accepting.set()  # nobody should wait for a worker that is gone

    async def submit(self, batch_id: int, message: tuple[Any, ...]) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.pending[batch_id] = future
        size = len(message[2])
        self.pending_messages += size
        try:
            if self.reader is None or self.reader.done():
                raise WorkerError(f"{self.name} is gone")
            write_frame(self.stdin, message)
            await self.stdin.drain()
            return await future
        except ConnectionError:
            raise WorkerError(f"{self.name} closed its pipe") from None
        finally:
            self.pending.pop(batch_id, None)
            self.pending_messages -= size

    def flush(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            write_frame(self.stdin, (FLUSH,))

    async def stop(self) -> int | None:
        self.closing = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.stdin.close()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                code = await self.proc.wait()
                if self.reader is not None:
                    await self.reader
                return code
        except TimeoutError:
            log.error("worker did not stop in time; killing it", worker=self.name)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return await self.proc.wait()


class WorkerPool:
    """The consumer's processor when decoding and inserting happen in worker processes."""

    def __init__(self, workers: Sequence[_Worker]) -> None:
        self._workers = list(workers)
        self._ids = itertools.count(1)
        self._closed = False

    @classmethod
    async def start(cls, config: WorkerConfig, count: int, deadline: Deadline) -> WorkerPool:
        """Start ``count`` workers and wait until each is configured."""
        workers: list[_Worker] = []
        try:
            for index in range(count):
                proc = await asyncio.create_subprocess_exec(
                    *WORKER_COMMAND,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                worker = _Worker(index, proc)
                workers.append(worker)
                await worker.handshake(config, deadline)
        except BaseException:
            for worker in workers:
                await worker.stop()
            raise
        pool = cls(workers)
        log.info("workers started", pids=[w.proc.pid for w in workers])
        return pool

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    @property
    def alive(self) -> bool:
        return all(w.proc.returncode is None for w in self._workers)

    async def ready(self) -> None:
        """Returns when a worker's writer accepts rows (waits out a ClickHouse outage)."""
        while not self._closed and not any(w.accepting.is_set() for w in self._workers):
            waits = [asyncio.ensure_future(w.accepting.wait()) for w in self._workers]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def process(self, msgs: Sequence[Msg]) -> ProcessingResult:
        payloads = [msg.data for msg in msgs]
        ids = [headers.get(MSG_ID_HEADER) if (headers := msg.headers) else None for msg in msgs]
        replies = [msg.reply for msg in msgs]
        subjects = [msg.subject for msg in msgs]
        worker = min(self._workers, key=lambda w: (not w.accepting.is_set(), w.pending_messages))
        batch_id = next(self._ids)
        outcome = await worker.submit(batch_id, (BATCH, batch_id, payloads, ids, replies, subjects))
        if isinstance(outcome, ProcessingResult):
            return outcome
        raise WorkerError(f"{worker.name}: {outcome}")

    async def run(self, token: Any) -> None:
        """Runner process: at shutdown, has the workers insert what they buffer (so the
        consumer can ack its last batches) and returns; raises if a worker exits before."""
        stop = asyncio.ensure_future(token.wait())
        exits = {asyncio.ensure_future(w.proc.wait()): w for w in self._workers}
        try:
            done, _ = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for future in (stop, *exits):
                future.cancel()
        for future in done:
            worker = exits.get(future)
            if worker is not None and not worker.closing:
                raise WorkerError(f"{worker.name} exited with {worker.proc.returncode}")
        for worker in self._workers:
            worker.flush()

    async def close(self) -> None:
        """Close the pipes; each worker flushes its writer, answers and exits. Idempotent."""
        if self._closed:
            return
        self._closed = True
        codes = await asyncio.gather(*(w.stop() for w in self._workers))
        failed = [f"{w.name}: {c}" for w, c in zip(self._workers, codes, strict=True) if c]
        if failed:
            raise WorkerError(f"workers exited badly: {', '.join(failed)}")
