"""One audit, start to end: the stream read from its start point to the last sequence it held
when the audit began, chunk by chunk, each chunk checked against ClickHouse before the next."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

from ponix_cli.audit.naming import Namer
from ponix_cli.audit.report import AuditReport, Findings
from ponix_cli.audit.scan import CHUNK, Chunk, Scan, settle
from ponix_cli.audit.table import duplicated, row_counts
from ponix_cli.errors import CliError
from ponix_cli.progress import Ticker
from ponix_cli.stream_reader import StartAt, read_messages

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from ponix_config import ClickHouseSettings, NatsSettings

DLQ_PAGE: Final = 1000
_TICK_EVERY: Final = 1000


async def run_audit(
    nats: NatsSettings,
    clickhouse: ClickHouseSettings,
    start: StartAt,
    *,
    chunk_size: int = CHUNK,
) -> AuditReport:
    from ponix_cli.jetstream import connection, consumer_info, stream_info
    from ponix_clickhouse import make_client

    started = time.monotonic()
    found = Findings()
    # No default database: every name is qualified, and a missing database then reads as the
    # missing table it is (run the migrations) rather than a failed login.
    client = make_client(clickhouse, database="")
    try:
        namer = await asyncio.to_thread(Namer.for_table, client, clickhouse, nats)
        async with connection(nats, name="ponix-audit") as nc:
            info = await stream_info(nc, nats, nats.stream)
            if info is None:
                raise CliError(
                    "nats.stream_missing",
                    f"stream {nats.stream} does not exist: nothing was published yet",
                )
            consumer = await consumer_info(nc, nats, nats.stream, nats.consumer)
            floor = (
                int(consumer.ack_floor.stream_seq or 0) if consumer and consumer.ack_floor else 0
            )
            dead = await _dead_letter_sources(nc, nats, start.seq or 1)
            last = int(info.state.last_seq or 0)
            scan = Scan(nats.stream, namer, dead, found, chunk_size=chunk_size)
            reported: set[str] = set()

            async def check(chunk: Chunk) -> None:
                counts = await asyncio.to_thread(row_counts, client, clickhouse, chunk.ids())
                twice = await asyncio.to_thread(duplicated, client, clickhouse, counts)
                settle(found, chunk, counts, twice, ack_floor=floor, reported=reported)

            checker = _OneAtATime(check)

            first = int(info.state.first_seq or 0)
            total = max(0, last - max(first, start.seq or 0) + 1) if start.time is None else None
            with Ticker(total, "reading stream") as ticker:

                async def handle(msg: Msg, seq: int) -> bool:
                    full = scan.add(msg, seq)
                    if full is not None:
                        await checker.submit(full)
                    if found.read % _TICK_EVERY == 0:
                        ticker.update(found.read)
                    return True

                try:
                    if info.state.messages:
                        await read_messages(
                            nc,
                            stream=nats.stream,
                            subject=nats.subjects[0],
                            start=start,
                            last_seq=last,
                            handle=handle,
                        )
                    await checker.submit(scan.take())
                    await checker.drain()
                finally:
                    checker.cancel()
    finally:
        client.disconnect()
    return AuditReport.of(
        found,
        stream=nats.stream,
        table=f"{clickhouse.database}.{clickhouse.table}",
        dlq_stream=nats.dlq_stream,
        range_=start.describe(),
        ack_floor=floor,
        seconds=time.monotonic() - started,
    )


class _OneAtATime:
    """Checks chunks in the background, one at a time, while the next chunk is read: at most
    two chunks are held, and reading (the slower side) never waits for ClickHouse unless a
    check falls a whole chunk behind."""

    def __init__(self, check: Callable[[Chunk], Coroutine[Any, Any, None]]) -> None:
        self._check = check
        self._running: asyncio.Task[None] | None = None

    async def submit(self, chunk: Chunk) -> None:
        await self.drain()
        self._running = asyncio.create_task(self._check(chunk))

    async def drain(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            await running

    def cancel(self) -> None:
        if self._running is not None:
            self._running.cancel()


async def _dead_letter_sources(nc: NatsClient, nats: NatsSettings, from_seq: int) -> dict[int, str]:
    """Source stream sequence -> error code, for the dead letters of our stream at or after
    ``from_seq`` (the DLQ holds poison only, so this stays small)."""
    from ponix_cli.jetstream import stream_info
    from ponix_nats import list_dead_letters

    if await stream_info(nc, nats, nats.dlq_stream) is None:
        return {}
    js = nc.jetstream()
    sources: dict[int, str] = {}
    cursor = 1
    while True:
        page = await list_dead_letters(js, nats, DLQ_PAGE, start_seq=cursor)
        for letter in page:
            if letter.stream == nats.stream and letter.sequence >= from_seq:
                sources.setdefault(letter.sequence, letter.code or "-")
        if len(page) < DLQ_PAGE:
            return sources
        cursor = page[-1].dlq_seq + 1
