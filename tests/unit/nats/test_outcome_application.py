"""How a ProcessingResult is settled (``decide`` + ``settle``, the consumer's outcome path), with
an in-memory fake of the messages, the connection and the dead-letter publisher (the
real-server behaviour is in tests/integration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from ponix_config import NatsSettings
from ponix_nats import (
    ACK,
    Nak,
    ProcessingResult,
    PublishError,
    SettlePolicy,
    Term,
    decide,
    settle,
)

Log = list[tuple[str, ...]]


@dataclass
class FakeMeta:
    @dataclass
    class Seq:
        stream: int
        consumer: int

    num_delivered: int
    sequence: Seq
    stream: str = "S"
    num_pending: int = 0


@dataclass
class FakeMsg:
    data: bytes
    log: Log
    deliveries: int = 1
    subject: str = "env.acme"
    headers: dict[str, str] | None = None
    is_acked: bool = False
    metadata: FakeMeta = field(init=False)

    def __post_init__(self) -> None:
        seq = int(self.data.decode().removeprefix("m"))
        self.metadata = FakeMeta(self.deliveries, FakeMeta.Seq(seq, seq))

    @property
    def reply(self) -> str:
        return f"$JS.ACK.{self.data.decode()}"

    async def ack(self) -> None:
        assert not self.is_acked, "acked twice"
        self.is_acked = True
        self.log.append(("ack", self.data.decode()))

    async def nak(self, delay: float | None = None) -> None:
        assert not self.is_acked, "resolved twice"
        self.is_acked = True
        self.log.append(("nak", self.data.decode(), f"{delay:g}"))

    async def in_progress(self) -> None:
        self.log.append(("wpi", self.data.decode()))


class FakeClient:
    def __init__(self, log: Log) -> None:
        self.log = log

    async def publish(self, subject: str, payload: bytes = b"", **_: Any) -> None:
        self.log.append(("publish", subject, payload.decode()))


class FakeDeadLetters:
    def __init__(self, log: Log, fail: set[bytes] = frozenset()) -> None:  # type: ignore[assignment]
        self.log = log
        self.fail = fail

    async def publish_many(
        self, letters: Sequence[tuple[Any, str, str]]
    ) -> list[PublishError | None]:
        out: list[PublishError | None] = []
        for msg, code, reason in letters:
            if msg.data in self.fail:
                out.append(PublishError("dlq", None, "dlq stream is full"))
            else:
                self.log.append(("dlq", msg.data.decode(), code, reason))
                out.append(None)
        return out


SETTINGS = NatsSettings(max_deliver=3, nak_delay_initial=0.5, nak_delay_max=4.0)


POLICY = SettlePolicy.from_settings(SETTINGS)


async def apply(
    log: Log,
    batch: list[FakeMsg],
    result: ProcessingResult,
    fail: set[bytes] = frozenset(),  # type: ignore[assignment]
) -> None:
    await settle(batch, result, POLICY, FakeDeadLetters(log, fail), FakeClient(log))  # type: ignore[arg-type]


def msgs(log: Log, *deliveries: int) -> list[FakeMsg]:
    return [FakeMsg(f"m{i}".encode(), log, d) for i, d in enumerate(deliveries, start=1)]


async def test_ack_all_acks_each_message_once_in_order() -> None:
    log: Log = []
    batch = msgs(log, 1, 1, 1)
    await apply(log, batch, ProcessingResult.ack_all(3))
    assert log == [("ack", "m1"), ("ack", "m2"), ("ack", "m3")]


async def test_each_outcome_goes_to_its_own_message() -> None:
    log: Log = []
    batch = msgs(log, 1, 3, 1, 2)
    result = ProcessingResult(
        [
            ACK,
            Nak("ch.down", "refused"),  # third delivery: 0.5 * 2**2 = 2 s
            Nak("ch.down", "refused", delay=0.25),
            Term("envelope.undecodable", "truncated"),
        ]
    )
    await apply(log, batch, result)
    assert log[:2] == [("ack", "m1"), ("nak", "m3", "0.25")]
    # Each DLQ copy strictly before its term, and the term carries the reason.
    for seq, code, reason in (
        ("m2", "ch.down", "max_deliver reached: refused"),
        ("m4", "envelope.undecodable", "truncated"),
    ):
        assert log.index(("dlq", seq, code, reason)) < log.index(
            ("publish", f"$JS.ACK.{seq}", f"+TERM {reason}")
        )
    assert len(log) == 6


async def test_nak_without_delay_backs_off_by_delivery_count() -> None:
    log: Log = []
    batch = msgs(log, 1, 2)
    await apply(log, batch, ProcessingResult.nak_all(2, "ch.down", "refused"))
    assert log == [("nak", "m1", "0.5"), ("nak", "m2", "1")]


async def test_an_uncounted_nak_is_never_dead_lettered() -> None:
    """The store's failure (rows given back at shutdown) never spends the delivery budget."""
    log: Log = []
    batch = msgs(log, 3, 30)
    result = ProcessingResult.nak_all(2, "clickhouse.held_at_shutdown", "x", 2.0, counted=False)
    await apply(log, batch, result)
    assert log == [("nak", "m1", "2"), ("nak", "m2", "2")]


async def test_failed_dlq_copy_naks_instead_of_terming() -> None:
    log: Log = []
    batch = msgs(log, 2)
    await apply(log, batch, ProcessingResult([Term("x", "bad")]), fail={b"m1"})
    assert log == [("nak", "m1", "1")]


@pytest.mark.parametrize("process", ["raise", "short"])
async def test_a_broken_processor_naks_the_whole_batch_with_backoff(process: str) -> None:
    log: Log = []

    class Broken:
        async def process(self, batch: Sequence[FakeMsg]) -> ProcessingResult:
            if process == "raise":
                raise ValueError("boom")
            return ProcessingResult.ack_all(len(batch) - 1)

    batch = msgs(log, 1, 1)
    result = await decide(Broken(), batch)  # type: ignore[arg-type]
    assert {outcome.code for outcome in result.outcomes} == {"processor.failed"}  # type: ignore[union-attr]
    await apply(log, batch, result)
    assert log == [("nak", "m1", "0.5"), ("nak", "m2", "0.5")]
