"""``ponix status``: the stream, the consumer's lag, the DLQ and the table, in one look.

Every figure is read from the servers themselves (JetStream stream and consumer info, ClickHouse
``count() ... FINAL`` and ``system.parts``), so it is right whichever processes are running.
"Last write" is when the newest active data part of the table was written: an insert creates a
part, and a background merge rewrites parts too, so it is the last insert or a little after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Final
from urllib.parse import urlsplit

import typer

from ponix_cli import console, render
from ponix_cli.errors import CliError
from ponix_cli.options import ClickHouseUrl, Json, NatsUrl
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from clickhouse_driver import Client as ClickHouseClient
    from nats.aio.client import Client as NatsClient
    from nats.js.api import ConsumerInfo, StreamInfo

    from ponix_config import ClickHouseSettings, NatsSettings

DEFAULT_INTERVAL: Final = 2.0

EPILOG = """
**Examples**

```
ponix status
ponix status --watch               # refresh every 2 s until Ctrl-C
ponix status --watch --interval 5
ponix status --json | jq .consumer.pending
```

**Reading it:** *pending* is in the stream and not yet delivered to the ingester (lag);
*ack pending* is delivered and not yet stored and acked; *redelivered* counts deliveries
after a nak or an ack timeout; *dead letters* are envelopes that can never be stored
(`ponix dlq list`). *rows* is the exact count (`FINAL`); *raw* includes duplicates that
ReplacingMergeTree has not merged away yet.
"""


@dataclass(frozen=True, slots=True)
class StreamState:
    name: str
    messages: int
    bytes: int
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class ConsumerState:
    name: str
    pending: int
    """In the stream, not yet delivered (the lag)."""
    ack_pending: int
    """Delivered, not yet acked."""
    redelivered: int
    ack_floor: int
    """Every stream sequence up to this one is acked (or termed)."""


@dataclass(frozen=True, slots=True)
class TableState:
    name: str
    rows: int
    """Exact: ``count() FINAL``."""
    raw_rows: int
    """``count()`` without FINAL: duplicates not merged away yet included."""
    parts: int
    last_write: datetime | None
    last_write_age: float | None
    """Seconds since ``last_write`` on the server's clock."""
    server_version: str


@dataclass(frozen=True, slots=True)
class Drift:
    """One field whose value on the server differs from this command's settings."""

    what: str
    """``stream``, ``dlq_stream`` or ``consumer``."""
    name: str
    field: str
    server: str
    settings: str


@dataclass(frozen=True, slots=True)
class Status:
    nats_url: str
    clickhouse_url: str
    stream: StreamState | None = None
    consumer: ConsumerState | None = None
    dlq: StreamState | None = None
    table: TableState | None = None
    errors: list[str] = field(default_factory=list)
    drift: list[Drift] = field(default_factory=list)
    """Fields where the stream, DLQ stream or consumer differ from these settings (left as is:
    ``ponix provision`` applies the settings)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=render.json_default)


def status(
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C (see --interval).")
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.2, help="Seconds between refreshes with --watch."),
    ] = DEFAULT_INTERVAL,
    as_json: Json = False,
    nats_url: NatsUrl = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Show stream size, consumer lag (pending / ack pending / redelivered), DLQ size, and
    the table's exact row count and last write.

    Exits 1 when NATS or ClickHouse cannot be reached (the part that could be read is
    still shown). With `--watch --json`, one JSON object per line.
    """
    from ponix_config import ClickHouseSettings, NatsSettings, load_settings

    use_targets(nats_url=nats_url, clickhouse_url=clickhouse_url)
    console.quiet_logging()
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings)
    reader = StatusReader(nats, clickhouse)
    if watch:
        console.run_async(lambda: _watch(reader, interval, as_json=as_json), interrupt_code=0)
        return
    snapshot = console.run_async(reader.read_once)
    if snapshot.stream is None and snapshot.table is None and len(snapshot.errors) == 2:
        raise reader.first_error or CliError("cli.status_failed", snapshot.errors[0])
    console.say(snapshot.to_json() if as_json else render_status(snapshot))
    for error in snapshot.errors:
        console.warn(f"error: {error}")
    if snapshot.errors:
        raise typer.Exit(1)


class StatusReader:
    """Reads a :class:`Status`; keeps its connections between reads for ``--watch``."""

    def __init__(self, nats: NatsSettings, clickhouse: ClickHouseSettings) -> None:
        self._nats = nats
        self._clickhouse = clickhouse
        self._nc: NatsClient | None = None
        self._client: ClickHouseClient | None = None
        self.first_error: Exception | None = None

    async def read_once(self) -> Status:
        try:
            return await self.read()
        finally:
            await self.close()

    async def read(self) -> Status:
        errors: list[str] = []
        drift: list[Drift] = []
        nats_part, table = await asyncio.gather(
            self._read_nats(errors, drift), asyncio.to_thread(self._read_table, errors)
        )
        stream, consumer, dlq = nats_part
        return Status(
            nats_url=self._nats.url,
            clickhouse_url=_clean_clickhouse_url(self._clickhouse),
            stream=stream,
            consumer=consumer,
            dlq=dlq,
            table=table,
            errors=errors,
            drift=drift,
        )

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is not None:
            try:
                async with asyncio.timeout(2.0):
                    await nc.close()
            except TimeoutError:
                pass
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.disconnect)

    async def _read_nats(
        self, errors: list[str], drift: list[Drift]
    ) -> tuple[StreamState | None, ConsumerState | None, StreamState | None]:
        from ponix_nats import compare_topology, connect, consumer_info, stream_info

        settings = self._nats
        try:
            if self._nc is None:
                self._nc = await connect(settings, name="ponix-status")
            js = self._nc.jetstream()
            info = await stream_info(js, settings, settings.stream)
            dlq_info = await stream_info(js, settings, settings.dlq_stream)
            consumer = await consumer_info(js, settings, settings.stream, settings.consumer)
        except Exception as exc:
            if not isinstance(getattr(exc, "code", None), str):
                raise
            self._note(exc, errors)
            return None, None, None
        check = compare_topology(settings, stream=info, dlq_stream=dlq_info, consumer=consumer)
        drift += [Drift(c.what, c.name, c.field, c.old, c.new) for c in check.drift]
        return (
            _stream_state(settings.stream, info),
            _consumer_state(settings.consumer, consumer),
            _stream_state(settings.dlq_stream, dlq_info),
        )

    def _read_table(self, errors: list[str]) -> TableState | None:
        from ponix_clickhouse import make_client, qualified_name, run_query, server_version

        settings = self._clickhouse
        try:
            if self._client is None:
                self._client = make_client(settings, database="")
            client = self._client
            version = ".".join(map(str, server_version(client)))
            params = {"db": settings.database, "t": settings.table}
            exists = run_query(
                client,
                "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
                params,
            ).rows[0][0]
            if not exists:
                errors.append(
                    f"clickhouse.schema_mismatch: table {settings.database}.{settings.table} "
                    "does not exist (run `ponix migrate`, or start the ingester)"
                )
                return None
            name = qualified_name(settings.database, settings.table)
            exact = run_query(client, f"SELECT count() FROM {name} FINAL").rows[0][0]
            raw = run_query(client, f"SELECT count() FROM {name}").rows[0][0]
            parts, newest, now = run_query(
                client,
                "SELECT count(), toUInt32(max(modification_time)), toUInt32(now()) "
                "FROM system.parts WHERE database = %(db)s AND table = %(t)s AND active",
                params,
            ).rows[0]
        except Exception as exc:
            if not isinstance(getattr(exc, "code", None), str):
                raise
            self._note(exc, errors)
            return None
        last_write = datetime.fromtimestamp(int(newest), UTC) if parts else None
        return TableState(
            name=f"{settings.database}.{settings.table}",
            rows=int(exact),
            raw_rows=int(raw),
            parts=int(parts),
            last_write=last_write,
            last_write_age=float(int(now) - int(newest)) if parts else None,
            server_version=version,
        )

    def _note(self, exc: Exception, errors: list[str]) -> None:
        if self.first_error is None:
            self.first_error = exc
        errors.append(str(exc).splitlines()[0])


async def _watch(reader: StatusReader, interval: float, *, as_json: bool) -> None:
    from rich.live import Live
    from rich.text import Text

    try:
        if as_json or not console.stdout_is_tty():
            while True:
                started = time.monotonic()
                snapshot = await reader.read()
                console.say(snapshot.to_json() if as_json else render_status(snapshot) + "\n")
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        with Live(console=console.out(), auto_refresh=False) as live:
            while True:
                started = time.monotonic()
                snapshot = await reader.read()
                stamp = datetime.now(UTC).strftime("%H:%M:%S UTC")
                text = render_status(snapshot) + f"\n\nrefreshed {stamp}, every {interval:g} s; "
                live.update(Text(text + "Ctrl-C to stop"), refresh=True)
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        await reader.close()


def render_status(snapshot: Status) -> str:
    """The human view of a :class:`Status`: one section per server, aligned."""
    lines = [f"NATS {snapshot.nats_url}"]
    if snapshot.stream is None and snapshot.consumer is None and snapshot.dlq is None:
        lines.append("  unavailable" if snapshot.errors else "  stream missing")
    else:
        lines += _nats_lines(snapshot)
    lines.append(f"ClickHouse {snapshot.clickhouse_url}")
    table = snapshot.table
    if table is None and any(e.startswith("clickhouse.schema_mismatch") for e in snapshot.errors):
        lines.append("  table        missing (`ponix migrate` creates it; so does the ingester)")
    elif table is None:
        lines.append("  unavailable")
    else:
        ago = "never"
        if table.last_write is not None:
            age = render.duration(table.last_write_age)
            ago = f"{table.last_write:%Y-%m-%d %H:%M:%S} UTC ({age} ago)"
        lines += [
            f"  table        {table.name} (ClickHouse {table.server_version})",
            f"  rows         {render.count(table.rows)} exact (FINAL), "
            f"{render.count(table.raw_rows)} raw",
            f"  last write   {ago}",
        ]
    return "\n".join(lines)


def _nats_lines(snapshot: Status) -> list[str]:
    lines: list[str] = []
    stream = snapshot.stream
    if stream is None:
        lines.append("  stream       missing (the ingester or `ponix provision` creates it)")
    else:
        span = f"seq {stream.first_seq}..{stream.last_seq}" if stream.messages else "empty"
        lines.append(
            f"  stream       {stream.name}: {render.count(stream.messages)} messages, "
            f"{render.size(stream.bytes)} ({span})"
        )
    consumer = snapshot.consumer
    if consumer is None:
        lines.append("  consumer     missing (the ingester or `ponix provision` creates it)")
    else:
        lines.append(
            f"  consumer     {consumer.name}: pending {render.count(consumer.pending)}, "
            f"ack pending {render.count(consumer.ack_pending)}, "
            f"redelivered {render.count(consumer.redelivered)}"
        )
    dlq = snapshot.dlq
    dead = "missing (created with the stream)" if dlq is None else render.count(dlq.messages)
    where = f" in {dlq.name}" if dlq is not None else ""
    lines.append(f"  dead letters {dead}{where}")
    if snapshot.drift:
        shown = "; ".join(
            f"{d.what}.{d.field} is {d.server} (settings: {d.settings})" for d in snapshot.drift
        )
        lines.append(f"  drift        {shown}; left as is, `ponix provision` applies the settings")
    return lines


def _stream_state(name: str, info: StreamInfo | None) -> StreamState | None:
    if info is None:
        return None
    state = info.state
    return StreamState(
        name=name,
        messages=int(state.messages or 0),
        bytes=int(state.bytes or 0),
        first_seq=int(state.first_seq or 0),
        last_seq=int(state.last_seq or 0),
    )


def _consumer_state(name: str, info: ConsumerInfo | None) -> ConsumerState | None:
    if info is None:
        return None
    floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
    return ConsumerState(
        name=name,
        pending=int(info.num_pending or 0),
        ack_pending=int(info.num_ack_pending or 0),
        redelivered=int(info.num_redelivered or 0),
        ack_floor=int(floor or 0),
    )


def _clean_clickhouse_url(settings: ClickHouseSettings) -> str:
    """``scheme://host:port`` (settings hold no credentials in the URL)."""
    parts = urlsplit(settings.url)
    return f"{parts.scheme}://{parts.netloc}"
