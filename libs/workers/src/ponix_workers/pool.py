"""The ingester's side of its worker processes (``INGESTER_WORKERS`` >= 1).

:class:`WorkerPool` is the consumer's processor (a ``BatchProcessor`` with ``ready()``): each
fetched batch's payloads (with each message's ``Nats-Msg-Id``, reply and subject, for
envelopes without an id and for the subject check) go down a pipe to the least busy worker, and
its ``ProcessingResult`` comes back; the event loop only pays for four list comprehensions and a
pickle per batch.

The writer's state crosses the pipe too, as the inline ingester reads it from its writer:
``ready()`` waits while no worker's writer accepts rows (full, or holding a batch the store
refuses), and ``holding`` is true while any worker holds one (readiness turns false).

Supervision: ``run`` is a runner process that fails when a worker exits before shutdown, so the
runner stops the service (exit code 1); that worker's batches fail and are nakked, never acked.
At shutdown ``run`` tells the workers to stop holding and to insert what they buffer, so the
consumer can settle its last batches. ``close`` (a closer, after the consumer has returned)
closes each worker's stdin and waits for it to flush, answer and exit.

Metrics: the workers record the writer's metrics in a multiprocess directory that this process
exports (:mod:`ponix_workers.metrics`); the held seconds are exported from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from nats.aio.msg import Msg

from ponix_nats import ProcessingResult
from ponix_proto import MSG_ID_HEADER
from ponix_runner import Deadline, ShutdownSignal
from ponix_telemetry import get_logger, metrics
from ponix_workers.errors import WorkerExitedError, WorkerFailedBatchError, WorkerStartError
from ponix_workers.metrics import WorkerMetrics
from ponix_workers.pipe import BATCH, DONE, FLUSH, STATE, UP, WorkerConfig, read_frame, write_frame

__all__ = ("WORKER_COMMAND", "WorkerPool")

log = get_logger(__name__)

# The package's __main__: ``python -m`` on a module the package has already imported makes
# runpy warn ("found in sys.modules after import of package") and run a second copy of it.
WORKER_COMMAND: Final = (sys.executable, "-m", "ponix_workers")
_STOP_TIMEOUT: Final = 4.0


class _Worker:
    """One worker process, the batches it holds, and its writer's state as it last said."""

    def __init__(
        self, index: int, proc: asyncio.subprocess.Process, on_exit: Callable[[int], None]
    ) -> None:
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
        self.holding_since: float | None = None
        """Monotonic time the worker said its writer began holding; None when it does not."""
        self.reader: asyncio.Task[None] | None = None
        self.closing = False
        self.exited: asyncio.Task[int] = asyncio.get_running_loop().create_task(
            self._wait_exit(on_exit)
        )

    @property
    def name(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"

    async def _wait_exit(self, on_exit: Callable[[int], None]) -> int:
        code = await self.proc.wait()
        on_exit(self.proc.pid)
        return code

    async def handshake(self, config: WorkerConfig, deadline: Deadline) -> None:
        write_frame(self.stdin, config)
        try:
            async with asyncio.timeout(max(deadline.remaining(), 0.1)):
                await self.stdin.drain()
                frame = await read_frame(self.stdout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            code = self.proc.returncode
            why = f"exited with {code}" if code is not None else "did not start in time"
            raise WorkerStartError(self.name, f"{why} (its log is on stderr)") from None
        if frame != (UP,):
            raise WorkerStartError(self.name, f"answered {frame!r} instead of {UP!r}")
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await read_frame(self.stdout)
                if frame[0] == DONE:
                    _, batch_id, result = frame
                    future = self.pending.pop(batch_id, None)
                    if future is not None and not future.done():
                        future.set_result(result)
                elif frame[0] == STATE:
                    _, accepting, holding = frame
                    if accepting:
                        self.accepting.set()
                    else:
                        self.accepting.clear()
                    if not holding:
                        self.holding_since = None
                    elif self.holding_since is None:
                        self.holding_since = time.monotonic()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._fail_pending()

    def _fail_pending(self) -> None:
        why = "closed" if self.closing else "exited"
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    WorkerExitedError(
                        self.name, f"{why} before storing the batch", self.proc.returncode
                    )
                )
        self.pending.clear()
        # Nobody should wait for a worker that is gone, nor count it as holding.
        self.accepting.set()
        self.holding_since = None

    async def submit(self, batch_id: int, message: tuple[Any, ...]) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.pending[batch_id] = future
        size = len(message[2])
        self.pending_messages += size
        try:
            if self.reader is None or self.reader.done():
                raise WorkerExitedError(self.name, "is gone", self.proc.returncode)
            write_frame(self.stdin, message)
            await self.stdin.drain()
            return await future
        except ConnectionError:
            raise WorkerExitedError(self.name, "closed its pipe", self.proc.returncode) from None
        finally:
            self.pending.pop(batch_id, None)
            self.pending_messages -= size

    def flush(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            write_frame(self.stdin, (FLUSH,))

    async def stop(self) -> int:
        self.closing = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            self.stdin.close()
        try:
            async with asyncio.timeout(_STOP_TIMEOUT):
                code = await asyncio.shield(self.exited)
                if self.reader is not None:
                    await self.reader
                return code
        except TimeoutError:
            log.error("worker did not stop in time; killing it", worker=self.name)
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            return await self.exited


class WorkerPool:
    """The consumer's processor when decoding and inserting happen in worker processes."""

    def __init__(self, workers: Sequence[_Worker], table: str) -> None:
        self._workers = list(workers)
        self._ids = itertools.count(1)
        self._closed = False
        metrics.HELD_SECONDS.labels(table).set_function(self._held_seconds)

    @classmethod
    async def start(
        cls, config: WorkerConfig, count: int, deadline: Deadline, worker_metrics: WorkerMetrics
    ) -> WorkerPool:
        """Start ``count`` workers, recording their metrics in ``worker_metrics``, and wait
        until each is configured."""
        workers: list[_Worker] = []
        try:
            for index in range(count):
                proc = await asyncio.create_subprocess_exec(
                    *WORKER_COMMAND,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env=worker_metrics.environment(),
                )
                worker = _Worker(index, proc, worker_metrics.process_exited)
                workers.append(worker)
                await worker.handshake(config, deadline)
        except BaseException:
            for worker in workers:
                await worker.stop()
            raise
        pool = cls(
            workers, metrics.table_label(config.clickhouse.database, config.clickhouse.table)
        )
        log.info("workers started", pids=pool.pids, metrics_dir=str(worker_metrics.directory))
        return pool

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    @property
    def alive(self) -> bool:
        return all(w.proc.returncode is None for w in self._workers)

    @property
    def holding(self) -> bool:
        """True while a worker's writer holds a batch because the store fails its INSERT."""
        return any(w.holding_since is not None for w in self._workers)

    def _held_seconds(self) -> float:
        now = time.monotonic()
        return max(
            (now - w.holding_since for w in self._workers if w.holding_since is not None),
            default=0.0,
        )

    async def ready(self) -> None:
        """Returns when a worker's writer accepts rows (waits while they hold or are full)."""
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
        result = await worker.submit(batch_id, (BATCH, batch_id, payloads, ids, replies, subjects))
        if isinstance(result, ProcessingResult):
            return result
        raise WorkerFailedBatchError(worker.name, str(result))

    async def run(self, token: ShutdownSignal) -> None:
        """Runner process: at shutdown, has the workers stop holding and insert what they
        buffer (so the consumer can settle its last batches) and returns; raises if a worker
        exits before."""
        stop = asyncio.ensure_future(token.wait())
        try:
            await asyncio.wait(
                {stop, *(w.exited for w in self._workers)}, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        for worker in self._workers:
            if worker.exited.done() and not worker.closing:
                code = worker.proc.returncode
                raise WorkerExitedError(worker.name, f"exited with {code}", code)
        for worker in self._workers:
            worker.flush()

    async def close(self) -> None:
        """Close the pipes; each worker flushes its writer, answers and exits. Idempotent."""
        if self._closed:
            return
        self._closed = True
        codes = await asyncio.gather(*(w.stop() for w in self._workers))
        failed = [(w, c) for w, c in zip(self._workers, codes, strict=True) if c]
        if failed:
            names = ", ".join(f"{w.name}: {c}" for w, c in failed)
            raise WorkerExitedError(names, "exited badly", failed[0][1])
