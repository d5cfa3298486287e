"""The decode + insert worker process, started by the pool.

It runs the same :class:`~ponix_ingest.EnvelopeProcessor` (``RowBuilder`` + ``BatchWriter``) as
the inline ingester, on the batches the ingester's event loop fetched, and sends back each
batch's :class:`~ponix_nats.ProcessingResult`; the ingester then settles it. So the event loop
only fetches and acks, and row building and inserting use another core.

Its writer holds batches through store failures exactly as the inline one does; the pool learns
whether it holds, and whether it takes more rows, from ``STATE`` frames (:mod:`ponix_workers.pipe`).
The writer calls back whenever either may have changed, and a frame goes out only when one did.

Lifecycle: the pool owns it. It reads its :class:`WorkerConfig` and batches from stdin and
answers on stdout (fd 1 is then pointed at stderr, so a stray print cannot corrupt the pipe).
SIGINT and SIGTERM are ignored: a Ctrl-C reaches the whole process group, and the ingester, not
the signal, decides when the worker stops. ``FLUSH`` (shutdown began): held rows are given back
(nakked, not counted against ``NATS_MAX_DELIVER``) and what is buffered is inserted at once.
End of file on stdin (the ingester closed the pipe, or died) means: flush the writer, answer
every batch, exit 0. A worker whose ingester died stores its last rows unacked; they are
redelivered and collapse in the ReplacingMergeTree.

Metrics: prometheus_client's multiprocess mode, in the directory the pool names in
``PROMETHEUS_MULTIPROC_DIR`` (:mod:`ponix_workers.metrics`); nothing crosses the pipe for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop

from ponix_clickhouse import BatchWriter, RowBuilder
from ponix_config import TelemetrySettings, load_settings
from ponix_ingest import EnvelopeProcessor
from ponix_proto import MSG_ID_HEADER
from ponix_telemetry import configure_logging, get_logger
from ponix_workers.pipe import (
    BATCH,
    DONE,
    FLUSH,
    STATE,
    UP,
    WorkerConfig,
    read_frame,
    stream_sequence_key,
    write_frame,
)

log = get_logger(__name__)

"""Seconds between two reads of the writer's state while batches are in the worker."""


class _Piped:
    """A message as it crossed the pipe: what ``RowBuilder.build`` reads of a delivery. The
    name of an envelope without an id is its Nats-Msg-Id, else stream:sequence from its reply
    subject (the ``metadata`` the builder would otherwise parse)."""

    __slots__ = ("_id", "_reply", "data", "subject")

    def __init__(self, data: bytes, msg_id: str | None, reply: str, subject: str) -> None:
        self.data = data
        self.subject = subject
        self._id = msg_id
        self._reply = reply

    @property
    def headers(self) -> dict[str, str]:
        return {MSG_ID_HEADER: self._id or stream_sequence_key(self._reply)}

    @property
    def metadata(self) -> Any:  # never read: headers always name the message
        raise AttributeError("metadata")


class _Worker:
    def __init__(self, config: WorkerConfig, out: asyncio.StreamWriter) -> None:
        self.out = out
        layout = config.layout
        self.writer = BatchWriter(
            config.clickhouse,
            layout.columns,
            server_version=layout.server_version,
            layout=layout,
            shutdown_timeout=config.shutdown_timeout,
            on_state_change=self.send_state,
        )
        subjects = config.subjects
        self.processor = EnvelopeProcessor(
            RowBuilder(
                max_bytes=config.max_envelope_bytes,
                time_range=config.time_range,
                subject_for=None if subjects is None else subjects.subject_for,
            ),
            self.writer,
        )
        self.tasks: set[asyncio.Task[None]] = set()
        self.state = (True, False)
        """(accepting, holding), as the pool last heard it."""
        self.waiting_for_room: asyncio.Task[None] | None = None
        self.draining = False

    def submit(
        self,
        batch_id: int,
        payloads: list[bytes],
        ids: list[str | None],
        replies: list[str],
        subjects: list[str],
    ) -> None:
        msgs = [_Piped(data, ids[i], replies[i], subjects[i]) for i, data in enumerate(payloads)]
        self._track(self._store(batch_id, msgs))
        if self.draining:
            # After the store task has added its rows (tasks start in order).
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Insert what is buffered now, without waiting for the batch latency."""
        self._track(self.writer.flush())

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def shut_down(self) -> None:
        """Shutdown began: stop holding (held rows are given back) and insert what is left."""
        self.draining = True
        self.writer.shut_down()
        self.flush()

    async def _store(self, batch_id: int, msgs: list[_Piped]) -> None:
        try:
            result: object = await self.processor.process(msgs)
        except Exception as exc:  # the ingester naks the batch, as inline
            log.exception("batch failed in the worker", messages=len(msgs))
            result = f"{type(exc).__name__}: {exc}"
        self.send_state()
        write_frame(self.out, (DONE, batch_id, result))

    def send_state(self) -> None:
        """Tell the pool whether the writer accepts rows and whether it holds, if that changed."""
        writer = self.writer
        state = (writer.accepting, writer.holding)
        if state == self.state:
            return
        self.state = state
        write_frame(self.out, (STATE, *state))
        if not state[0] and self.waiting_for_room is None:
            self.waiting_for_room = asyncio.get_running_loop().create_task(self._announce_room())

    async def _announce_room(self) -> None:
        await self.writer.ready()
        self.waiting_for_room = None
        self.send_state()

    async def finish(self) -> None:
        """End of input: store what is buffered and answer every batch."""
        await self.writer.close()
        if self.tasks:
            await asyncio.wait(set(self.tasks))
        if self.waiting_for_room is not None:
            self.waiting_for_room.cancel()


async def _pipes() -> tuple[asyncio.StreamReader, asyncio.StreamWriter, asyncio.BaseTransport]:
    """stdin as a stream, the real stdout as a writer, and stdin's transport (to close)."""
    loop = asyncio.get_running_loop()
    out_fd = os.dup(1)
    os.dup2(2, 1)  # print() and stray writes go to stderr, never into the pipe
    reader = asyncio.StreamReader(limit=1 << 20)
    stdin, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()),
        os.fdopen(out_fd, "wb", buffering=0),
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop), stdin


async def serve() -> None:
    reader, out, stdin = await _pipes()
    try:
        await _serve(reader, out)
    finally:
        with contextlib.suppress(ConnectionError):
            await out.drain()
        out.close()
        stdin.close()


async def _serve(reader: asyncio.StreamReader, out: asyncio.StreamWriter) -> None:
    try:
        config = await read_frame(reader)
    except asyncio.IncompleteReadError:  # the ingester gave up (or died) while starting
        log.info("no config before end of input; exiting")
        return
    if not isinstance(config, WorkerConfig):
        raise TypeError(f"expected a WorkerConfig first, got {type(config).__name__}")
    worker = _Worker(config, out)
    write_frame(out, (UP,))
    while True:
        try:
            frame = await read_frame(reader)
        except asyncio.IncompleteReadError:
            break
        if frame[0] == BATCH:
            _, batch_id, payloads, ids, replies, subjects = frame
            worker.submit(batch_id, payloads, ids, replies, subjects)
        elif frame[0] == FLUSH:
            worker.shut_down()
        else:
            raise ValueError(f"unexpected frame {frame[0]!r}")
    await worker.finish()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(load_settings(TelemetrySettings))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())
    sys.exit(0)
