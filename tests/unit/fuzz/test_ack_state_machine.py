"""The ack state machine, stateful: every message ends acked (row stored) or termed (DLQ copy
stored first), exactly once, and only poison is termed, whatever ClickHouse and the DLQ stream
do meanwhile (down, too many parts, read-only, an unknown error) and however often the ingester
shuts down while ClickHouse refuses its rows.

The real ``decide`` + ``settle`` (the consumer's outcome path), ``EnvelopeProcessor``,
``RowBuilder`` and ``BatchWriter`` run on one event loop; only the edges are in memory: a
JetStream that redelivers nakked messages after their delay and gives up after ``max_deliver``
(as nats-server does), a ClickHouse client whose INSERT fails as the rule says, and a DLQ
publisher that fails while the rule says "down".
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

from ponix_clickhouse import BatchWriter, RowBuilder, TimeRange
from ponix_config import ClickHouseSettings, NatsSettings
from ponix_ingest import EnvelopeProcessor
from ponix_nats import PublishError, SettlePolicy, consumer_config, decide, settle
from ponix_proto import new_envelope_id, pb
from ponix_runner import Backoff

MAX_DELIVER = 4
NATS = NatsSettings(max_deliver=MAX_DELIVER, nak_delay_initial=0.5, nak_delay_max=4.0)
# What the server enforces is what provisioning asks for (nats-server drops a message from the
# consumer after that many deliveries; -1 never does).
SERVER_MAX_DELIVER = int(consumer_config(NATS).max_deliver or -1)
CLICKHOUSE = ClickHouseSettings(batch_max_latency=0.001, batch_max_rows=50, max_in_flight_rows=200)
FAST_BACKOFF = Backoff(initial=0.002, maximum=0.01)
POLICY = SettlePolicy.from_settings(NATS)
# What each ClickHouse state raises on INSERT; "up" stores.
FAILURES: dict[str, Exception] = {
    "down": NetworkError("Connection refused (fake)"),
    "too_many_parts": ServerException("Too many parts (300). Merges are slower", 252),
    "readonly": ServerException("Cannot execute query in readonly mode", 164),
    "unknown": ServerException("Something nobody has seen yet", 1234),
}
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
    in_flight: bool = False
    crashed: int = 0  # deliveries during which the processor crashed


class World:
    """The edges: JetStream's redelivery, ClickHouse's table, the DLQ stream."""

    def __init__(self) -> None:
        self.clock = 0.0
        self.messages: dict[int, Stored] = {}
        self.rows: dict[str, int] = {}
        self.dlq: dict[int, str] = {}
        self.clickhouse = "up"  # "up" | "down" | "too_many_parts"
        self.dlq_up = True
        self.crashing = False
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
        failure = FAILURES.get(self._world.clickhouse)
        if failure is not None:
            raise failure
        with self._world.lock:
            for row in params:
                self._world.rows[row[0]] = self._world.rows.get(row[0], 0) + 1
        return len(params)

    def disconnect(self) -> None:
        return None


class CrashingProcessor:
    """The processor, crashing while the world says so: a failure counted against
    max_deliver (the message's own, as far as anyone can tell)."""

    def __init__(self, world: World, inner: EnvelopeProcessor) -> None:
        self._world = world
        self._inner = inner

    async def process(self, msgs: Sequence[Any]) -> Any:
        if self._world.crashing:
            raise RuntimeError("processor bug (fake)")
        return await self._inner.process(msgs)


class AckMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.world = World()
        self.ids: dict[int, str] = {}
        self.deliveries: dict[str, FakeMsg] = {}
        self.batches: set[asyncio.Task[None]] = set()
        self.writer = self._start_writer()

    def _start_writer(self) -> BatchWriter:
        async def make() -> BatchWriter:
            return BatchWriter(
                CLICKHOUSE,
                server_version=(18, 16),
                backoff=FAST_BACKOFF,
                shutdown_timeout=0.05,
                client_factory=lambda: FakeClickHouse(self.world),
            )

        writer = self.loop.run_until_complete(make())
        builder = RowBuilder(max_bytes=4096, time_range=TimeRange.for_column_type("DateTime"))
        self.processor = CrashingProcessor(self.world, EnvelopeProcessor(builder, writer))
        return writer

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

    @rule(state=st.sampled_from(["up", "down", "too_many_parts", "readonly", "unknown"]))
    def clickhouse(self, state: str) -> None:
        self.world.clickhouse = state
        self._run(0.003)

    @rule(up=st.booleans())
    def dlq(self, up: bool) -> None:
        self.world.dlq_up = up

    @rule(crashing=st.booleans())
    def processor_crashes(self, crashing: bool) -> None:
        self.world.crashing = crashing

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def wait(self, seconds: float) -> None:
        self.world.clock += seconds
        self._run(0.003)  # held batches retry on loop time

    @rule()
    def restart(self) -> None:
        """SIGTERM while batches may be held: they are given back, then a new ingester."""

        async def stop() -> None:
            self.writer.shut_down()

        self.loop.run_until_complete(stop())
        self._settle_all()
        self.loop.run_until_complete(self.writer.close())
        self.writer = self._start_writer()

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def acked_rows_are_stored_and_only_poison_or_crashes_are_termed(self) -> None:
        for msg in self.world.messages.values():
            envelope_id = self.ids[msg.seq]
            if msg.final == "acked":
                assert not msg.poison, f"poison m{msg.seq} was acked"
                assert self.world.rows.get(envelope_id, 0) >= 1, f"m{msg.seq} acked, not stored"
            if msg.poison:
                assert envelope_id not in self.world.rows
            elif msg.final == "termed":
                # A valid envelope reaches the DLQ only through processor crashes.
                assert msg.crashed >= 1, f"valid m{msg.seq} termed: {msg.resolutions}"

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
        self.world.crashing = False
        self._settle_all()
        for _ in range(4 * MAX_DELIVER):
            self.world.clock += 3600.0
            available = self._available()
            if not available:
                return
            self._deliver(available)
            self._settle_all()

    # -- helpers ------------------------------------------------------------------------------

    def _available(self) -> list[Stored]:
        return [
            m
            for m in self.world.messages.values()
            if m.final is None and m.available_at <= self.world.clock and not m.in_flight
        ]

    def _run(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def _settle_all(self) -> None:
        async def all_settled() -> None:
            while self.batches:
                await asyncio.wait(set(self.batches))

        self.loop.run_until_complete(asyncio.wait_for(all_settled(), 10.0))

    def _deliver(self, batch: list[Stored]) -> None:
        msgs = []
        for stored in batch:
            stored.delivered += 1
            stored.in_flight = True
            # Until resolved, a delivery comes back after ack_wait at the latest (the consumer
            # keeps a held one alive with in_progress).
            stored.available_at = self.world.clock + NATS.ack_wait
            if self.world.crashing:
                stored.crashed += 1
            msg = FakeMsg(self.world, stored, self.ids[stored.seq])
            self.deliveries[msg.reply] = msg
            msgs.append(msg)

        async def handle() -> None:
            result = await decide(self.processor, msgs)  # type: ignore[arg-type]
            await settle(
                msgs,
                result,
                POLICY,
                FakeDeadLetters(self.world),
                FakeNats(self.world, self.deliveries),
            )  # type: ignore[arg-type]
            for msg in msgs:
                assert msg.is_acked, f"m{msg.seq} delivery {msg.delivery} left unresolved"
                self.world.messages[msg.seq].in_flight = False

        task = self.loop.create_task(handle())
        self.batches.add(task)
        task.add_done_callback(self.batches.discard)
        self._run(0.003)


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
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        examples.hit(AckMachine.runs)


@pytest.mark.parametrize("state", ["down", "readonly", "unknown"])
def test_a_store_failure_never_costs_a_delivery(state: str) -> None:
    """Whatever ClickHouse does wrong, a valid envelope is held and retried in place: it is
    delivered once, and stored once ClickHouse takes it, however long that takes."""
    machine = AckMachine()
    try:
        machine.publish(poison=False, which=b"")
        machine.clickhouse(state)
        machine.deliver(1)
        for _ in range(20):
            machine.wait(10.0)
        stored = machine.world.messages[1]
        assert stored.final is None, f"ended {stored.final}: {stored.resolutions}"
        assert machine.writer.holding
        machine.clickhouse("up")
        machine._settle_all()
        assert stored.final == "acked"
        assert stored.delivered == 1
    finally:
        machine.loop.run_until_complete(machine.writer.close())
        machine.loop.close()


@pytest.mark.parametrize("dlq_up", [True, False])
def test_a_message_that_crashes_the_processor_is_dead_lettered_at_max_deliver(
    dlq_up: bool,
) -> None:
    """A processor crash is counted: the last allowed delivery dead-letters the message. When
    the DLQ copy fails at that moment the consumer naks, and the message must come back (the
    server has no delivery limit of its own) until its copy lands."""
    machine = AckMachine()
    try:
        machine.publish(poison=False, which=b"")
        machine.processor_crashes(crashing=True)
        machine.dlq(dlq_up)
        for _ in range(MAX_DELIVER):
            machine.wait(3600.0)
            machine.deliver(1)
            machine._settle_all()
        stored = machine.world.messages[1]
        if not dlq_up:
            assert stored.final is None, f"ended {stored.final}: {stored.resolutions}"
            machine.wait(3600.0)
            assert machine._available() == [stored], "the message is no longer delivered"
            machine.deliver(1)  # past max_deliver: the copy fails again, nakked again
            machine._settle_all()
            machine.dlq(up=True)
            machine.wait(3600.0)
            machine.deliver(1)
            machine._settle_all()
        assert stored.final == "termed", f"ended {stored.final}: {stored.resolutions}"
        assert 1 in machine.world.dlq
    finally:
        machine.loop.run_until_complete(machine.writer.close())
        machine.loop.close()
