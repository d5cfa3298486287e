"""``ponix audit``: reconcile what the stream retains with what the table holds.

Every message the stream retains is read once through an ordered consumer (ephemeral, no acks,
in memory) and named with the ingester's own rule (``RowBuilder`` with the
ingester's limits and the table's time range, ``fallback_key`` for envelopes without an id), so
the audit expects exactly the ids the ingester stores. Then:

* a message whose copy is in the DLQ is *dead-lettered* (poison, not missing);
* a message the rule says is poison, with no DLQ copy, is *poison, not in the DLQ* (its copy was
  redriven or expired);
* a message republished by ``ponix dlq redrive`` replaces its original, whose id may differ
  when the original had neither an id nor a ``Nats-Msg-Id``;
* an id absent from the table is *missing* when its sequence is at or below the durable
  consumer's ack floor (acked, so it should be stored), *not yet processed* above it;
* ids with more than one row in the exact read (``FINAL``) are *duplicated*.

The table side sends the stream's ids as an external table, in chunks, so only matching ids come
back however large the table is. Exit 1 when anything is missing or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import typer

from ponix_cli import console, render
from ponix_cli.errors import USER_ERROR, CliError
from ponix_cli.options import ClickHouseUrl, Json, NatsUrl
from ponix_cli.progress import Ticker
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from clickhouse_driver import Client as ClickHouseClient
    from nats.aio.client import Client as NatsClient
    from nats.aio.msg import Msg

    from ponix_clickhouse import RowBuilder
    from ponix_config import ClickHouseSettings, NatsSettings
    from ponix_ingester import IngesterSettings

# Reading the stream stops when nothing arrives for this long (removed messages).
STALL_TIMEOUT: Final = 5.0
_TICK_EVERY: Final = 1000
ID_CHUNK: Final = 50_000
SHOWN: Final = 20
DUPLICATES_LISTED: Final = 1000
DLQ_PAGE: Final = 1000
_REDRIVEN_FROM: Final = "Ponix-Redriven-From"
_MSG_ID: Final = "Nats-Msg-Id"

EPILOG = """
**Examples**

```
ponix audit
ponix audit --json | jq '.missing | length'
```

Uses the same INGESTER_MAX_ENVELOPE_BYTES as the ingester (set it alike) to tell poison from
envelopes that should be stored. Messages the stream no longer retains (NATS_MAX_AGE,
NATS_MAX_BYTES) are not audited.
"""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A stream message the audit expects in the table."""

    seq: int
    id: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    seq: int
    code: str


@dataclass(frozen=True, slots=True)
class Poisoned:
    seq: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Duplicate:
    id: str
    rows: int


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What ``ponix audit`` found; ``ok`` when nothing is missing or duplicated."""

    stream: str
    table: str
    dlq_stream: str
    first_seq: int
    last_seq: int
    read: int
    ack_floor: int
    expected: int
    stored: int
    redriven: int
    seconds: float
    dead_lettered: list[DeadLettered] = field(default_factory=list)
    poison: list[Poisoned] = field(default_factory=list)
    unprocessed: list[Envelope] = field(default_factory=list)
    missing: list[Envelope] = field(default_factory=list)
    duplicated: list[Duplicate] = field(default_factory=list)
    duplicated_total: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated_total

    def to_json(self) -> str:
        body = asdict(self)
        body["ok"] = self.ok
        return json.dumps(body, indent=2)


def audit(
    as_json: Json = False,
    nats_url: NatsUrl = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Check that every envelope the stream retains is stored exactly once.

    Reports envelopes missing from ClickHouse (acked by the consumer but not in the
    table), ids duplicated in the exact read (FINAL), and, separately and without
    failing, dead-lettered poison and envelopes the ingester has not processed yet.
    Exits 1 when anything is missing or duplicated.
    """
    from ponix_config import ClickHouseSettings, NatsSettings, load_settings
    from ponix_ingester import IngesterSettings

    use_targets(nats_url=nats_url, clickhouse_url=clickhouse_url)
    console.quiet_logging()
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings)
    ingester = load_settings(IngesterSettings)
    report = console.run_async(lambda: run_audit(nats, clickhouse, ingester))
    console.say(report.to_json() if as_json else render_report(report))
    if not report.ok:
        raise typer.Exit(USER_ERROR)


async def run_audit(
    nats: NatsSettings, clickhouse: ClickHouseSettings, ingester: IngesterSettings
) -> AuditReport:
    from ponix_cli.jetstream import connection, consumer_info, stream_info
    from ponix_clickhouse import make_client

    started = time.monotonic()
    # No default database: every name is qualified, and a missing database then reads as the
    # missing table it is (run the migrations) rather than a failed login.
    client = make_client(clickhouse, database="")
    try:
        builder = await asyncio.to_thread(_row_builder, client, clickhouse, ingester)
        async with connection(nats, name="ponix-audit") as nc:
            info = await stream_info(nc, nats, nats.stream)
            if info is None:
                raise CliError(
                    "nats.stream_missing",
                    f"stream {nats.stream} does not exist: nothing was published yet",
                )
            consumer = await consumer_info(nc, nats, nats.stream, nats.consumer)
            floor = consumer.ack_floor.stream_seq if consumer and consumer.ack_floor else 0
            dead = await _dead_letter_sources(nc, nats)
            first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
            scan = _Scan(nats.stream, builder, dead)
            if info.state.messages:
                await _read_stream(nc, nats, scan, first, last)
        expected = scan.expected()
        present = await asyncio.to_thread(_present_ids, client, clickhouse, list(expected))
        duplicated, duplicated_total = await asyncio.to_thread(_duplicates, client, clickhouse)
    finally:
        client.disconnect()
    absent = sorted(
        (
            Envelope(seq, envelope_id)
            for envelope_id, seq in expected.items()
            if envelope_id not in present
        ),
        key=lambda e: e.seq,
    )
    return AuditReport(
        stream=nats.stream,
        table=f"{clickhouse.database}.{clickhouse.table}",
        dlq_stream=nats.dlq_stream,
        first_seq=first,
        last_seq=last,
        read=scan.read,
        ack_floor=int(floor or 0),
        expected=len(expected),
        stored=len(present),
        redriven=scan.redriven,
        seconds=time.monotonic() - started,
        dead_lettered=scan.dead_lettered,
        poison=scan.poison,
        unprocessed=[e for e in absent if e.seq > floor],
        missing=[e for e in absent if e.seq <= floor],
        duplicated=duplicated,
        duplicated_total=duplicated_total,
    )


def _row_builder(
    client: ClickHouseClient, clickhouse: ClickHouseSettings, ingester: IngesterSettings
) -> RowBuilder:
    """The ingester's RowBuilder for the live table (``Ingester.start`` builds the same)."""
    from ponix_clickhouse import RowBuilder, TimeRange, read_table_layout

    layout = read_table_layout(client, clickhouse.database, clickhouse.table)
    time_range = TimeRange.for_column_type(
        layout.type_of("occurred_at"), layout.time_scale("occurred_at")
    )
    return RowBuilder(max_bytes=ingester.max_envelope_bytes, time_range=time_range)


class _Scan:
    """Names each stream message with the ingester's rule, as the messages stream by."""

    def __init__(self, stream: str, builder: RowBuilder, dead: dict[int, str]) -> None:
        self._stream = stream
        self._builder = builder
        self._dead = dead
        self._redrive_prefix = f"redrive:{stream}:"
        self._first_seq: dict[str, int] = {}
        # Originals without Nats-Msg-Id, the only ones whose redriven copy gets another id.
        self._anonymous: dict[int, str] = {}
        self._superseded: set[int] = set()
        self.read = 0
        self.redriven = 0
        self.dead_lettered: list[DeadLettered] = []
        self.poison: list[Poisoned] = []

    def add(self, msg: Msg, seq: int) -> None:
        from ponix_clickhouse import Poison

        self.read += 1
        code = self._dead.get(seq)
        if code is not None:
            self.dead_lettered.append(DeadLettered(seq, code))
            return
        headers = msg.headers
        msg_id = headers.get(_MSG_ID) if headers else None
        if (
            headers
            and _REDRIVEN_FROM in headers
            and msg_id
            and msg_id.startswith(self._redrive_prefix)
        ):
            original = msg_id.removeprefix(self._redrive_prefix)
            if original.isdigit():
                self._superseded.add(int(original))
        built = self._builder.build(msg)
        if isinstance(built, Poison):
            self.poison.append(Poisoned(seq, built.code, built.reason))
            return
        envelope_id = built[0]
        self._first_seq.setdefault(envelope_id, seq)
        if not msg_id:
            self._anonymous[seq] = envelope_id

    def expected(self) -> dict[str, int]:
        """id -> the first stream sequence carrying it, without superseded originals."""
        for seq in self._superseded:
            envelope_id = self._anonymous.pop(seq, None)
            if envelope_id is not None and self._first_seq.get(envelope_id) == seq:
                del self._first_seq[envelope_id]
                self.redriven += 1
        return self._first_seq


async def _read_stream(
    nc: NatsClient, nats: NatsSettings, scan: _Scan, first: int, last: int
) -> None:
    """Every message from ``first`` to ``last`` through an ordered consumer (ephemeral, in
    memory, no acks, flow-controlled; nats-py re-creates it past any gap).

    Push, not pull: nats-py's ``fetch`` costs two tasks per message, which is most of the time
    of an audit; a subscription callback costs a queue hand-off.
    """
    from nats.js.api import DeliverPolicy

    js = nc.jetstream()
    finished = asyncio.Event()
    moved = asyncio.Event()
    failure: list[BaseException] = []

    with Ticker(last - first + 1, "reading stream") as ticker:

        async def on_message(msg: Msg) -> None:
            if finished.is_set():
                return
            try:
                meta = msg.metadata
                seq = meta.sequence.stream
                if seq <= last:
                    scan.add(msg, seq)
                if seq >= last or not meta.num_pending:
                    finished.set()
            except Exception as exc:  # noqa: BLE001 - raised from run_audit, not lost in nats-py
                failure.append(exc)
                finished.set()
            moved.set()
            if scan.read % _TICK_EVERY == 0:
                ticker.update(scan.read)

        sub = await js.subscribe(
            nats.subjects[0],
            stream=nats.stream,
            cb=on_message,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30.0,
        )
        try:
            # Ends at the last sequence, or when the stream stops delivering for a while (the
            # messages left were removed meanwhile: max_age, a purge).
            while not finished.is_set():
                moved.clear()
                try:
                    async with asyncio.timeout(STALL_TIMEOUT):
                        await moved.wait()
                except TimeoutError:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
    if failure:
        raise failure[0]


async def _dead_letter_sources(nc: NatsClient, nats: NatsSettings) -> dict[int, str]:
    """Source stream sequence -> error code, for every dead letter of our stream."""
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
            if letter.stream == nats.stream:
                sources.setdefault(letter.sequence, letter.code or "-")
        if len(page) < DLQ_PAGE:
            return sources
        cursor = page[-1].dlq_seq + 1


def _present_ids(
    client: ClickHouseClient, clickhouse: ClickHouseSettings, ids: list[str]
) -> set[str]:
    """The ids of ``ids`` the table holds (any row: FINAL is not needed for presence)."""
    from ponix_clickhouse import qualified_name

    table = qualified_name(clickhouse.database, clickhouse.table)
    sql = f"SELECT DISTINCT id FROM {table} WHERE id IN (SELECT id FROM ponix_audit_ids)"
    present: set[str] = set()
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        external = [
            {
                "name": "ponix_audit_ids",
                "structure": [("id", "String")],
                "data": [{"id": envelope_id} for envelope_id in chunk],
            }
        ]
        rows = _execute(client, clickhouse, sql, external)
        present.update(str(row[0]) for row in rows)
    return present


def _duplicates(
    client: ClickHouseClient, clickhouse: ClickHouseSettings
) -> tuple[list[Duplicate], int]:
    from ponix_clickhouse import qualified_name, run_query

    table = qualified_name(clickhouse.database, clickhouse.table)
    grouped = f"SELECT id, count() AS n FROM {table} FINAL GROUP BY id HAVING n > 1"
    total = int(run_query(client, f"SELECT count() FROM ({grouped})").rows[0][0])
    if not total:
        return [], 0
    rows = run_query(client, f"{grouped} ORDER BY n DESC, id LIMIT {DUPLICATES_LISTED}").rows
    return [Duplicate(str(envelope_id), int(n)) for envelope_id, n in rows], total


def _execute(
    client: ClickHouseClient,
    clickhouse: ClickHouseSettings,
    sql: str,
    external: list[dict[str, Any]],
) -> list[tuple[object, ...]]:
    """``client.execute`` with external tables, its errors as the ClickHouse lib's errors."""
    from clickhouse_driver import errors as driver_errors

    from ponix_clickhouse import ClickHouseUnavailableError, QueryError

    try:
        rows: list[tuple[object, ...]] = client.execute(sql, external_tables=external)
    except driver_errors.ServerException as exc:
        message = (exc.message or "").strip().splitlines()
        raise QueryError(exc.code, message[0] if message else "no message") from None
    except (driver_errors.NetworkError, driver_errors.SocketTimeoutError, EOFError, OSError) as exc:
        scheme = "clickhouses" if clickhouse.secure else "clickhouse"
        url = f"{scheme}://{clickhouse.host}:{clickhouse.port}"
        raise ClickHouseUnavailableError(
            url, str(exc).splitlines()[0] if str(exc) else ""
        ) from None
    return rows


def render_report(report: AuditReport) -> str:
    """The human view: one line per category, examples of each problem, then the verdict."""
    span = f"seq {report.first_seq}..{report.last_seq}" if report.read else "empty"
    lines = [
        f"audit of stream {report.stream} ({span}) against {report.table}: "
        f"{render.count(report.read)} messages read in {render.duration(report.seconds)}",
        _row("stored", report.stored, "distinct envelope ids found in the table"),
        _row(
            "dead-lettered",
            len(report.dead_lettered),
            f"poison in {report.dlq_stream}: `ponix dlq list`",
        ),
        _row("poison, not in DLQ", len(report.poison), "can never be stored; its DLQ copy is gone"),
        _row("redriven", report.redriven, "originals replaced by their redriven copy"),
        _row(
            "not yet processed",
            len(report.unprocessed),
            f"above the consumer's ack floor ({report.ack_floor}): still in flight",
        ),
        _row("missing", len(report.missing), "acked but not in the table"),
        _row(
            "duplicated ids", report.duplicated_total, "more than one row in the exact read (FINAL)"
        ),
    ]
    lines += _examples("missing", ((e.seq, e.id) for e in report.missing), ("seq", "id"))
    lines += _examples("duplicated", ((d.id, d.rows) for d in report.duplicated), ("id", "rows"))
    lines += _examples(
        "poison, not in DLQ", ((p.seq, p.code) for p in report.poison), ("seq", "code")
    )
    if report.ok:
        lines.append("OK: every envelope the stream retains is stored exactly once.")
    else:
        lines.append(
            f"FAILED: {render.count(len(report.missing))} missing, "
            f"{render.count(report.duplicated_total)} duplicated"
        )
    return "\n".join(lines)


def _row(label: str, n: int, note: str) -> str:
    return f"  {label:<20}{render.count(n):>10}  {note}"


def _examples(
    title: str, pairs: Iterable[tuple[object, object]], names: tuple[str, str]
) -> list[str]:
    listed = list(pairs)
    if not listed:
        return []
    lines = [f"{title} (first {min(len(listed), SHOWN)}):"]
    lines += [f"  {names[0]} {a}  {names[1]} {b}" for a, b in listed[:SHOWN]]
    return lines
