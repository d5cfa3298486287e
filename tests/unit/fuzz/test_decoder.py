"""Whatever bytes arrive, the decoder answers with a Row or a Poison with a known code, and the
processor answers with one outcome per message: neither ever raises.

Inputs: arbitrary bytes, envelopes built field by field over the whole wire range (timestamps
beyond the column's range, nanos outside [0, 1e9), NaN in ``data``, deep nesting, long ids), and
valid envelopes mutated byte by byte (flips, truncations, insertions, splices).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ponix_clickhouse import (
    DECODE_FAILED,
    INVALID,
    TIMESTAMP_OUT_OF_RANGE,
    TOO_LARGE,
    Fault,
    InsertError,
    Poison,
    Rejected,
    RowBuilder,
    TimeRange,
)
from ponix_ingest import EnvelopeProcessor
from ponix_nats import Ack, Nak, Term
from ponix_proto import new_envelope_id, pb
from tests.support.deliveries import FakeDelivery

KNOWN_CODES = frozenset({DECODE_FAILED, INVALID, TIMESTAMP_OUT_OF_RANGE, TOO_LARGE})
MAX_BYTES = 4096
# The two tables the ingester meets: DateTime (18.16) and DateTime64(3) (modern servers).
RANGES = (
    TimeRange.for_column_type("DateTime('UTC')", 1),
    TimeRange.for_column_type("DateTime64(3, 'UTC')", 1000),
)
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ---------------------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**53), 2**53).map(float),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=24,
)
edge_seconds = st.sampled_from(
    [
        -(2**63),
        -2_208_988_801,
        -2_208_988_800,
        -1,
        0,
        1,
        1_790_000_000,
        2**32 - 1,
        2**32,
        10_413_791_999,
        10_413_792_000,
        253_402_300_799,  # 9999-12-31T23:59:59Z, the Timestamp spec's maximum
        253_402_300_800,
        2**63 - 1,
    ]
)
seconds = st.one_of(edge_seconds, st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**32))
nanos = st.one_of(
    st.integers(0, 999_999_999),
    st.sampled_from([-1, 1_000_000_000, -(2**31), 2**31 - 1]),
    st.integers(-(2**31), 2**31 - 1),
)
timestamps = st.one_of(st.none(), st.tuples(seconds, nanos))
ids = st.one_of(
    st.just(""),
    st.builds(lambda: new_envelope_id()),
    st.text(max_size=140),
    st.text(min_size=120, max_size=140, alphabet="abc-0123"),
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """A ProcessedEnvelope with every field drawn from its whole wire range."""
    env = pb.ProcessedEnvelope(
        id=draw(ids),
        end_device_id=draw(st.text(max_size=30)),
        organization_id=draw(st.text(max_size=30)),
    )
    for field in ("occurred_at", "processed_at"):
        stamp = draw(timestamps)
        if stamp is not None:
            getattr(env, field).seconds, getattr(env, field).nanos = stamp
    data = draw(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
    if data:
        env.data.update(data)
    return env.SerializeToString()


def valid_envelope(draw: st.DrawFn) -> bytes:
    env = pb.ProcessedEnvelope(
        id=draw(st.one_of(st.just(""), st.builds(lambda: new_envelope_id()))),
        end_device_id=draw(st.text(min_size=1, max_size=20)),
        organization_id=draw(st.text(max_size=20)),
    )
    env.occurred_at.seconds = draw(st.integers(0, 2**32 - 1))
    env.occurred_at.nanos = draw(st.integers(0, 999_999_999))
    env.data.update(
        draw(st.dictionaries(st.text(max_size=10), json_values.filter(_finite), max_size=6))
    )
    return env.SerializeToString()


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid envelope with a few byte-level mutations, as a broken producer would send."""
    raw = bytearray(valid_envelope(draw))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "splice", "set"]))
        at = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and raw:
            raw[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x12, 0x1A, 0x22]))
        elif kind == "truncate":
            del raw[at:]
        elif kind == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "delete":
            del raw[at : at + draw(st.integers(1, 8))]
        elif kind == "splice":
            end = draw(st.integers(at, len(raw)))
            raw[end:end] = raw[at:end]
    return bytes(raw)


payloads = st.one_of(
    st.binary(max_size=256),
    envelopes(),
    mutated(),
    st.binary(min_size=MAX_BYTES + 1, max_size=MAX_BYTES + 64),
)

# -- the decoder --------------------------------------------------------------------------------


class KeySource(FakeDelivery):
    """Stands for the fetched message; counts how often the builder read its headers (only
    an envelope without an id needs its Nats-Msg-Id)."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.asked = 0

    @property  # type: ignore[override]
    def headers(self) -> dict[str, str]:
        self.asked += 1
        return {"Nats-Msg-Id": "Nats-Msg-Id-of-this-message"}

    @headers.setter
    def headers(self, _: object) -> None:
        pass


def build(payload: bytes, time_range: TimeRange) -> tuple[object, KeySource]:
    source = KeySource(payload)
    builder = RowBuilder(max_bytes=MAX_BYTES, time_range=time_range)
    return builder.build(source), source


def check_row_or_poison(payload: bytes, time_range: TimeRange) -> object:
    result, source = build(payload, time_range)
    if isinstance(result, Poison):
        assert result.code in KNOWN_CODES, result
        assert result.reason
        assert "\n" not in result.reason
        return result
    assert isinstance(result, tuple), result
    envelope_id, organization_id, device, occurred_at, processed_at, data = result
    assert isinstance(envelope_id, str)
    assert 0 < len(envelope_id) <= 128
    assert isinstance(organization_id, str)
    assert isinstance(device, str)
    assert device
    low, high, scale = time_range.low, time_range.high, time_range.scale
    for value in (occurred_at, processed_at):
        assert isinstance(value, int)
        # What the column can hold, in the driver's units: anything else is not a Row.
        assert low * scale <= value < high * scale, (value, time_range)
    assert isinstance(json.loads(data), dict)
    env = pb.ProcessedEnvelope.FromString(payload)
    assert source.asked == (0 if env.id else 1), "the key is derived only for id-less envelopes"
    assert build(payload, time_range)[0] == result, "the same bytes give the same row"
    return result


@pytest.mark.parametrize("time_range", RANGES, ids=["DateTime", "DateTime64"])
def test_any_bytes_give_a_row_or_a_known_poison(examples: Any, time_range: TimeRange) -> None:
    @settings(FUZZ, max_examples=examples.plan(300))
    @given(payload=payloads)
    def check(payload: bytes) -> None:
        examples.hit()
        check_row_or_poison(payload, time_range)

    check()


@pytest.mark.parametrize(
    ("field", "seconds", "nanos", "code"),
    [
        ("occurred_at", -1, 0, TIMESTAMP_OUT_OF_RANGE),
        ("occurred_at", 2**32, 0, TIMESTAMP_OUT_OF_RANGE),
        ("processed_at", 2**32, 0, TIMESTAMP_OUT_OF_RANGE),
        ("occurred_at", 1_790_000_000, -1, None),
        ("occurred_at", 1_790_000_000, 1_000_000_000, None),
        ("processed_at", 1_790_000_000, -5, None),
    ],
)
@pytest.mark.parametrize("with_id", [True, False], ids=["with-id", "without-id"])
def test_timestamps_the_column_cannot_hold_are_poison(
    field: str, seconds: int, nanos: int, code: str | None, with_id: bool
) -> None:
    env = pb.ProcessedEnvelope(end_device_id="d", organization_id="o")
    if with_id:
        env.id = new_envelope_id()
    env.occurred_at.seconds = 1_790_000_000
    getattr(env, field).seconds = seconds
    getattr(env, field).nanos = nanos
    result, _ = build(env.SerializeToString(), RANGES[0])
    assert isinstance(result, Poison), f"stored as {result!r}"
    assert result.code in ({code} if code else KNOWN_CODES)


def test_an_id_less_envelope_before_1970_does_not_raise_on_datetime64() -> None:
    env = pb.ProcessedEnvelope(end_device_id="d", organization_id="o")
    env.occurred_at.seconds = -86_400  # 1969-12-31: DateTime64 holds it, a UUIDv7 cannot
    result, _ = build(env.SerializeToString(), RANGES[1])
    assert isinstance(result, Poison | tuple)


# -- the processor ------------------------------------------------------------------------------


class FakeWriter:
    """The BatchWriter seen from the processor: ``add`` stores, rejects every ``reject``-th
    row for its content, or fails as at shutdown (``failure``)."""

    def __init__(self, failure: InsertError | None, reject: int) -> None:
        self.failure = failure
        self.reject = reject
        self.added: list[tuple[Any, ...]] = []

    accepting = True

    async def ready(self) -> None:
        return None

    def add(
        self, rows: Sequence[tuple[Any, ...]], nbytes: int
    ) -> asyncio.Future[tuple[Rejected, ...]]:
        assert nbytes >= 0
        future: asyncio.Future[tuple[Rejected, ...]] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        self.added.extend(rows)
        future.set_result(
            tuple(
                Rejected(i, InsertError("cannot_parse_text", "bad", fault=Fault.MESSAGE))
                for i in range(len(rows))
                if self.reject and i % self.reject == 0
            )
        )
        return future


failures = st.one_of(
    st.none(),
    st.builds(
        lambda reason: InsertError(reason, "fake", fault=Fault.STORE, retry_after=2),
        st.sampled_from(["held_at_shutdown", "network", "timeout"]),
    ),
)


@st.composite
def batches(draw: st.DrawFn) -> list[FakeDelivery]:
    out = []
    for seq in range(1, draw(st.integers(1, 12)) + 1):
        headers = draw(
            st.one_of(st.none(), st.just({}), st.builds(lambda: {"Nats-Msg-Id": new_envelope_id()}))
        )
        out.append(FakeDelivery(draw(payloads), headers, sequence=seq))
    return out


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.parametrize("time_range", RANGES, ids=["DateTime", "DateTime64"])
def test_the_processor_gives_one_outcome_per_message_and_never_raises(
    examples: Any, loop: asyncio.AbstractEventLoop, time_range: TimeRange
) -> None:
    builder = RowBuilder(max_bytes=MAX_BYTES, time_range=time_range)

    @settings(FUZZ, max_examples=examples.plan(120))
    @given(msgs=batches(), failure=failures, reject=st.sampled_from([0, 1, 3]))
    def check(msgs: list[FakeDelivery], failure: InsertError | None, reject: int) -> None:
        examples.hit()
        writer = FakeWriter(failure, reject)
        processor = EnvelopeProcessor(builder, writer)  # type: ignore[arg-type]
        result = loop.run_until_complete(processor.process(msgs))
        outcomes = list(result.outcomes)
        assert len(outcomes) == len(msgs)
        stored = 0
        for msg, outcome in zip(msgs, outcomes, strict=True):
            built = builder.build(msg)
            if isinstance(built, Poison):
                assert outcome == Term(built.code, built.reason)
            elif failure is not None:
                # Given back at shutdown: a delay, and never counted against max_deliver.
                assert isinstance(outcome, Nak)
                assert outcome.delay == failure.retry_after
                assert not outcome.counted
            else:
                assert writer.added[stored] == built
                if reject and stored % reject == 0:
                    assert outcome == Term("clickhouse.row_rejected", "cannot_parse_text: bad")
                else:
                    assert isinstance(outcome, Ack)
                stored += 1
        assert stored == len(writer.added)

    check()
