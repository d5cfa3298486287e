"""The test's own client of a pipeline: publish (synthetic envelopes or raw bytes, with a
:class:`Ledger` of PubAcks), then read the state: consumer info, exact counts, stored rows, dead
letters."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo

from ponix_clickhouse import make_client
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
from tests.support.environment import Pipeline
from tests.support.settlements import Settlements
from tests.support.waits import eventually

__all__ = (
    "Ledger",
    "PipelineClient",
    "Published",
    "StoredRow",
    "TableCounts",
    "envelope",
)


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

    def __init__(
        self, pipeline: Pipeline, nc: NatsClient, settlements: Settlements | None = None
    ) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.nats
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=5.0)
        self.settlements = settlements or Settlements(self.settings.stream, self.settings.consumer)
        """Every ack, nak, ``in_progress`` and term the consumer's deliveries got since
        :meth:`connect` (with the largest delivery count among them)."""

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, pipeline: Pipeline, *, provision: bool = False
    ) -> AsyncIterator[PipelineClient]:
        nc = await connect(pipeline.nats, name="ponix-tests")
        try:
            settings = pipeline.nats
            client = cls(
                pipeline, nc, await Settlements.watch(nc, settings.stream, settings.consumer)
            )
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
