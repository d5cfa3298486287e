"""The ingester <-> worker pipe: length-prefixed pickles over the worker's stdin and stdout.

Both ends are ours (the worker is ``python -m ponix_workers``, started by the pool with the same
interpreter), so pickle is safe and the cheapest way to move a batch: a list of 1000 envelope
payloads costs the event loop ~0.1 µs per message to send.

Frames, a 4-byte big-endian length then a pickle:

* pool -> worker: a :class:`WorkerConfig` first, then ``(BATCH, id, payloads, msg_ids,
  replies, subjects)`` per fetched batch; ``(FLUSH,)`` at shutdown: stop holding (held rows are
  given back), insert what is buffered now, and every later batch at once (the consumer is
  waiting to settle its last batches). End of file means "flush and exit".
* worker -> pool: ``(UP,)`` once configured; ``(DONE, id, result)`` per batch, the result a
  ``ProcessingResult`` (or the processor's error, as text); ``(STATE, accepting, holding)``
  whenever either changed: whether the writer takes more rows (backpressure) and whether it
  holds a batch the store refuses (readiness). A batch's ``STATE`` comes before its ``DONE``.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from dataclasses import dataclass
from typing import Any, Final

from ponix_clickhouse import TableLayout, TimeRange
from ponix_config import ClickHouseSettings, NatsSettings

BATCH: Final = "batch"
FLUSH: Final = "flush"
UP: Final = "up"
DONE: Final = "done"
STATE: Final = "state"

_HEADER = struct.Struct(">I")
_PROTOCOL = pickle.HIGHEST_PROTOCOL
JS_ACK_PREFIX: Final = "$JS.ACK."


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker needs to build rows and insert them like the inline processor."""

    clickhouse: ClickHouseSettings
    layout: TableLayout
    max_envelope_bytes: int
    time_range: TimeRange
    subjects: NatsSettings | None
    """Binds each envelope's organization to its subject; None trusts the payload."""
    shutdown_timeout: float


def write_frame(writer: asyncio.StreamWriter, message: Any) -> None:
    """Queue one frame; never blocks (``await writer.drain()`` to wait for the pipe)."""
    body = pickle.dumps(message, _PROTOCOL)
    writer.writelines((_HEADER.pack(len(body)), body))


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame; raises ``asyncio.IncompleteReadError`` at end of file."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))  # noqa: S301 - our own child's frames


def stream_sequence_key(reply: str) -> str:
    """``"<stream>:<stream sequence>"`` from a JetStream ack subject, as ``delivery_key`` makes
    it from ``Msg.metadata``: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...`` (9 tokens)
    or ``$JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...`` (11 or 12)."""
    tokens = reply.split(".")
    if not reply.startswith(JS_ACK_PREFIX):
        raise ValueError(f"not a JetStream ack subject: {reply!r}")
    if len(tokens) == 9:
        return f"{tokens[2]}:{int(tokens[5])}"
    if len(tokens) >= 11:
        return f"{tokens[4]}:{int(tokens[7])}"
    raise ValueError(f"not a JetStream ack subject: {reply!r}")
