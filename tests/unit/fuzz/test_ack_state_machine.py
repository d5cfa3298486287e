"""The ack state machine, stateful: every message ends acked (row stored) or termed (DLQ copy
stored first), exactly once, whatever ClickHouse and the DLQ stream do meanwhile.

The real ``BatchConsumer`` (outcome application), ``EnvelopeProcessor``, ``RowBuilder`` and
``BatchWriter`` run on one event loop; only the edges are in memory: a JetStream that redelivers
nakked messages after their delay and gives up after ``max_deliver`` (as nats-server does), a
ClickHouse client whose INSERT fails while the rule says "down", and a DLQ publisher that fails
while the rule says "down".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from clickhouse_driver.errors import NetworkError, ServerException
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ponix_clickhouse import Backoff, BatchWriter
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_ingester import EnvelopeProcessor, RowBuilder, TimeRange
from ponix_nats import BatchConsumer, PublishError, consumer_config
from ponix_nats.consumer import _Batch
from ponix_proto import new_envelope_id, pb

MAX_DELIVER = 4
NATS = NatsSettings(max_deliver=MAX_DELIVER, nak_delay_initial=0.5, nak_delay_max=4.0)
# What the server enforces is what provisioning asks for (nats-server drops a message from the
# consumer after that many deliveries; -1 never does).
SERVER_MAX_DELIVER = int(consumer_config(NATS).max_deliver or -1)
CLICKHOUSE = ClickHouseSettings(batch_max_latency=0.001, batch_max_rows=50, max_in_flight_rows=200)
FAST_BACKOFF = Backoff(initial=0.002, multiplier=2.0, maximum=0.01, jitter=0.0)
POISON_PAYLOADS = (b"\xff\xfe garbage", b"\n\x00", b"")


@dataclass
class Stored:
    """One published message as the in-memory JetStream keeps it."""

    seq: int
    payload: bytes
    poison: bool
    delivered: int = 0
    available_at: float = 0.0
    final: str | None = None  # "acked" | "termed" | "abandoned" (max_deliver, never resolved)
    resolutions: list[str] = field(default_factory=list)


class World:
    """The edges: JetStream's redelivery, ClickHouse's table, the DLQ stream."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.messages: dict[int, Stored] = {}
        self.rows: dict[str, int] = {}
        self.dlq: dict[int, str] = {}
        self.clickhouse = "up"  # "up" | "down" | "too_many_parts"
        self.dlq_up = True
        self.lock = threading.Lock()

    def resolve(self, seq: int, delivery: int, how: str) -> None:
        msg = self.messages[seq]
        msg.resolutions.append(f"{how}@{delivery}")
        assert msg.final is None, f"m{seq} {how} after it was {msg.final}"
        if how == "ack":
            msg.final = "acked"
        elif how == "term":
            assert seq in self.dlq, f"m{seq} termed without its DLQ copy"
            msg.final = "termed"
        elif 0 < SERVER_MAX_DELIVER <= delivery:
            msg.final = "abandoned"  # nats-server stops redelivering: nobody owns it any more


class FakeMsg:
    def __init__(self, world: World, stored: Stored, envelope_id: str) -> None:
        self._world = world
        self.seq = stored.seq
        self.delivery = stored.delivered
        self.data = stored.payload
        self.headers = {"Nats-Msg-Id": envelope_id}
        self.subject = "processed_envelopes.o"
        self.reply = f"$JS.ACK.{self.seq}.{self.delivery}"
        self.is_acked = False
        self.metadata = _Meta(self.delivery, self.seq)

    def _once(self) -> None:
        assert not self.is_acked, f"m{self.seq} delivery {self.delivery} resolved twice"
        self.is_acked = True

    async def ack(self) -> None:
        self._once()
        self._world.resolve(self.seq, self.delivery, "ack")

    async def nak(self, delay: float | None = None) -> None:
        self._once()
        stored = self._world.messages[self.seq]
        stored.available_at = self._world.clock + (delay or 0.0)
        self._world.resolve(self.seq, self.delivery, "nak")

    async def in_progress(self) -> None:
        return None


@dataclass
class _Seq:
    stream: int
    consumer: int


class _Meta:
    def __init__(self, delivered: int, seq: int) -> None:
        self.num_delivered = delivered
        self.sequence = _Seq(seq, seq)
        self.stream = "PROCESSED_ENVELOPES"


class FakeNats:
    """Only the +TERM publish of the consumer's dead-letter path reaches the connection."""

    def __init__(self, world: World, deliveries: dict[str, FakeMsg]) -> None:
        self._world = world
        self._deliveries = deliveries

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        assert payload.startswith(b"+TERM"), payload
        msg = self._deliveries[subject]
        msg._once()
        self._world.resolve(msg.seq, msg.delivery, "term")


class FakeDeadLetters:
    def __init__(self, world: World) -> None:
        self._world = world

    async def publish_many(self, letters: Sequence[tuple[Any, str, str]]) -> list[Any]:
        out: list[PublishError | None] = []
        for msg, code, _reason in letters:
            if self._world.dlq_up:
                self._world.dlq[msg.seq] = code
                out.append(None)
            else:
                out.append(PublishError("dlq", None, "no responders (fake)"))
        return out


class FakeClickHouse:
    """clickhouse-driver's Client as the writer's threads use it."""

    def __init__(self, world: World) -> None:
        self._world = world

    def execute(self, query: str, params: Any = None, **_: Any) -> Any:
        state = self._world.clickhouse
        if state == "down":
            raise NetworkError("Connection refused (fake)")
        if query == "SELECT 1":
            return [(1,)]
        if state == "too_many_parts":
            raise ServerException("Too many parts (300). Merges are processing slower", 252)
        with self._world.lock:
            for row in params:
                self._world.rows[row[0]] = self._world.rows.get(row[0], 0) + 1
        return len(params)

    def disconnect(self) -> None:
        return None


class AckMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = World()
        self.ids: dict[int, str] = {}
        self.deliveries: dict[str, FakeMsg] = {}
        self.writer = BatchWriter(
            CLICKHOUSE,
            dedup_tokens=False,
            backoff=FAST_BACKOFF,
            client_factory=lambda: FakeClickHouse(self.world),
        )
        builder = RowBuilder(max_bytes=4096, time_range=TimeRange.for_column_type("DateTime"))
        self.consumer = BatchConsumer(
            FakeNats(self.world, self.deliveries),  # type: ignore[arg-type]
            NATS,
            EnvelopeProcessor(builder, self.writer),
            dead_letters=FakeDeadLetters(self.world),  # type: ignore[arg-type]
            js=object(),  # type: ignore[arg-type]
        )

    @initialize()
    def counted(self) -> None:
        AckMachine.runs += 1

    runs = 0

    # -- rules ------------------------------------------------------------------------------

    @rule(poison=st.booleans(), which=st.sampled_from(POISON_PAYLOADS))
    def publish(self, poison: bool, which: bytes) -> None:
        seq = len(self.world.messages) + 1
        envelope_id = new_envelope_id()
        if poison:
            payload = which
        else:
            env = pb.ProcessedEnvelope(id=envelope_id, end_device_id="d", organization_id="o")
            env.occurred_at.seconds = 1_790_000_000 + seq
            payload = env.SerializeToString()
        self.ids[seq] = envelope_id
        self.world.messages[seq] = Stored(seq, payload, poison)

    @precondition(lambda self: self._available())
    @rule(size=st.integers(1, 8))
    def deliver(self, size: int) -> None:
        self._deliver(self._available()[:size])

    @rule(state=st.sampled_from(["up", "down", "too_many_parts"]))
    def clickhouse(self, state: str) -> None:
        self.world.clickhouse = state

    @rule(up=st.booleans())
    def dlq(self, up: bool) -> None:
        self.world.dlq_up = up

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def wait(self, seconds: float) -> None:
        self.world.clock += seconds
        # Let the writer's probe notice a healed ClickHouse (it polls on loop time).
        self.loop.run_until_complete(asyncio.sleep(0.003))

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def acked_rows_are_stored_and_poison_never_is(self) -> None:
        for msg in self.world.messages.values():
            envelope_id = self.ids[msg.seq]
            if msg.final == "acked":
                assert not msg.poison, f"poison m{msg.seq} was acked"
                assert self.world.rows.get(envelope_id, 0) >= 1, f"m{msg.seq} acked, not stored"
            if msg.poison:
                assert envelope_id not in self.world.rows

    @invariant()
    def nothing_is_in_flight_between_steps(self) -> None:
        assert self.consumer.in_flight == 0

    # -- the end ------------------------------------------------------------------------------

    def teardown(self) -> None:
        try:
            self._heal_and_drain()
            for msg in self.world.messages.values():
                assert msg.final in ("acked", "termed"), (
                    f"m{msg.seq} ({'poison' if msg.poison else 'valid'}) ended {msg.final}: "
                    f"{msg.resolutions}; neither stored nor dead-lettered"
                )
                if msg.poison:
                    assert msg.final == "termed"
        finally:
            self.loop.run_until_complete(self.writer.close())
            self.loop.close()

    def _heal_and_drain(self) -> None:
        self.world.clickhouse = "up"
        self.world.dlq_up = True
        for _ in range(4 * MAX_DELIVER):
            self.world.clock += 3600.0
            self.loop.run_until_complete(asyncio.wait_for(self.writer.ready(), 5.0))
            available = self._available()
            if not available:
                return
            self._deliver(available)

    # -- helpers ------------------------------------------------------------------------------

    def _available(self) -> list[Stored]:
        return [
            m
            for m in self.world.messages.values()
            if m.final is None and m.available_at <= self.world.clock
        ]

    def _deliver(self, batch: list[Stored]) -> None:
        msgs = []
        for stored in batch:
            stored.delivered += 1
            # Until resolved, a delivery comes back after ack_wait at the latest.
            stored.available_at = self.world.clock + NATS.ack_wait
            msg = FakeMsg(self.world, stored, self.ids[stored.seq])
            self.deliveries[msg.reply] = msg
            msgs.append(msg)
        self.consumer._in_flight += len(msgs)
        self.loop.run_until_complete(self.consumer._handle(_Batch(msgs, 0.0)))  # type: ignore[arg-type]
        for msg in msgs:
            assert msg.is_acked, f"m{msg.seq} delivery {msg.delivery} left unresolved"


def test_every_message_ends_acked_or_termed_exactly_once(examples: Any) -> None:
    planned = examples.plan(60)
    AckMachine.runs = 0
    try:
        run_state_machine_as_test(
            AckMachine,
            settings=settings(
                max_examples=planned,
                stateful_step_count=30,
                deadline=None,
                # Deterministic: the same sequences on every machine, so a red run is never luck.
                derandomize=True,
                database=None,
                # No shrinking: it costs most of the run when a sequence fails, and the
                # minimal case of the known failure is spelled out in the test below.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        examples.hit(AckMachine.runs)


@pytest.mark.parametrize("dlq_up", [True, False])
def test_a_valid_message_at_max_deliver_is_dead_lettered_not_dropped(dlq_up: bool) -> None:
    """The scenario the state machine found, spelled out: ClickHouse is down for every allowed
    delivery, so the last one dead-letters the row. When the DLQ copy fails at that moment the
    consumer naks, and the message must come back (the server has no delivery limit of its
    own) until its copy lands."""
    machine = AckMachine()
    try:
        machine.publish(poison=False, which=b"")
        machine.clickhouse("down")
        machine.dlq(dlq_up)
        for _ in range(MAX_DELIVER):
            machine.wait(3600.0)
            machine.deliver(1)
        stored = machine.world.messages[1]
        if not dlq_up:
            assert stored.final is None, f"ended {stored.final}: {stored.resolutions}"
            machine.wait(3600.0)
            assert machine._available() == [stored], "the message is no longer delivered"
            machine.deliver(1)  # past max_deliver: the copy fails again, nakked again
            machine.dlq(up=True)
            machine.wait(3600.0)
            machine.deliver(1)
        assert stored.final == "termed", f"ended {stored.final}: {stored.resolutions}"
        assert 1 in machine.world.dlq
    finally:
        machine.loop.run_until_complete(machine.writer.close())
        machine.loop.close()
