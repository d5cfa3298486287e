"""Issue #3, bad input: each poison message is copied to the DLQ with its own code and the
original bytes, then termed; the valid messages around it are stored and acked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from ponix_producer import SyntheticEnvelopes
from tests.support.pipeline import (
    Metrics,
    Pipeline,
    PipelineClient,
    Published,
    ServiceLauncher,
    envelope,
    eventually,
)

pytestmark = pytest.mark.integration

MAX_ENVELOPE_BYTES = 4096

DECODE_FAILED = "envelope.decode_failed"
INVALID = "envelope.invalid"
TOO_LARGE = "envelope.too_large"
OUT_OF_RANGE = "envelope.timestamp_out_of_range"


@dataclass(frozen=True)
class Poison:
    name: str
    payload: bytes
    code: str
    reason: str
    """A fragment the Ponix-Dlq-Reason header must contain."""


def _seconds(at: datetime) -> int:
    return int(at.timestamp())


def _poison_cases(column_type: str) -> list[Poison]:
    if column_type.startswith("DateTime64"):
        # DateTime64(3) holds 1900-01-01 .. 2299-12-31.
        too_late = _seconds(datetime(2300, 1, 2, tzinfo=UTC))
        too_early = _seconds(datetime(1899, 12, 31, tzinfo=UTC))
    else:
        # DateTime is UInt32 seconds: 1970-01-01 .. 2106-02-07.
        too_late = _seconds(datetime(2200, 1, 1, tzinfo=UTC))
        too_early = -1
    struct = struct_pb2.Struct()
    struct.update({"temperature": 21.5, "unit": "C"})
    timestamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
    oversized = envelope(envelope_id="big", data={"blob": "x" * (2 * MAX_ENVELOPE_BYTES)})
    return [
        Poison("garbage", b"\xff\xfe not protobuf \x00\x01", DECODE_FAILED, "not a Processed"),
        # A Struct's map entries land on field 1 (end_device_id, a string): invalid UTF-8.
        Poison("struct", struct.SerializeToString(), DECODE_FAILED, "not a Processed"),
        # A Timestamp's varints are unknown fields to an envelope: it decodes, with no device.
        Poison("timestamp", timestamp.SerializeToString(), INVALID, "end_device_id"),
        Poison(
            "no-device", envelope(end_device_id=None).SerializeToString(), INVALID, "end_device_id"
        ),
        Poison(
            "no-occurred-at", envelope(occurred_at=None).SerializeToString(), INVALID, "occurred_at"
        ),
        Poison("too-large", oversized.SerializeToString(), TOO_LARGE, "exceeds the limit"),
        Poison(
            "too-late",
            envelope(occurred_at=too_late).SerializeToString(),
            OUT_OF_RANGE,
            "occurred_at",
        ),
        Poison(
            "too-early",
            envelope(occurred_at=too_early).SerializeToString(),
            OUT_OF_RANGE,
            "occurred_at",
        ),
        Poison(
            "id-too-long",
            envelope(envelope_id="x" * 129).SerializeToString(),
            INVALID,
            "id is longer",
        ),
        Poison(
            "nan-in-data",
            envelope(data={"temperature": float("nan")}).SerializeToString(),
            INVALID,
            "JSON",
        ),
        Poison(
            "processed-too-late",
            envelope(processed_at=too_late).SerializeToString(),
            OUT_OF_RANGE,
            "processed_at",
        ),
    ]


async def test_poison_is_dead_lettered_with_its_code_and_valid_messages_around_it_are_stored(
    pipeline: Pipeline, client: PipelineClient, launch: ServiceLauncher, unique: str
) -> None:
    pipeline = pipeline.with_env(INGESTER_MAX_ENVELOPE_BYTES=MAX_ENVELOPE_BYTES)
    ingester = await launch.start(pipeline)
    cases = _poison_cases(await client.column_type("occurred_at"))
    fleet = SyntheticEnvelopes(seed=7)
    started_at = datetime.now(UTC)

    valid: list[Published] = []
    poison: dict[str, tuple[Poison, Published]] = {}
    for case in cases:
        good = fleet.next()
        valid.append(
            await client.publish_raw(
                good.payload, msg_id=good.envelope_id, organization_id=good.organization_id
            )
        )
        msg_id = f"{case.name}-{unique}"
        poison[msg_id] = (
            case,
            await client.publish_raw(case.payload, msg_id=msg_id, headers={"Trace-Id": msg_id}),
        )
    good = fleet.next()
    valid.append(
        await client.publish_raw(
            good.payload, msg_id=good.envelope_id, organization_id=good.organization_id
        )
    )
    total = len(valid) + len(poison)
    oversized = next(case.payload for case in cases if case.code == TOO_LARGE)
    assert len(oversized) > MAX_ENVELOPE_BYTES  # too large for the ingester...
    assert len(oversized) < pipeline.nats.max_msg_size  # ...but not for the stream

    info = await client.wait_until_drained(within=30)
    # Termed, not nakked: every message was delivered exactly once.
    assert info.delivered.consumer_seq == info.delivered.stream_seq == total

    counts = await client.counts()
    assert (counts.rows, counts.distinct_ids) == (len(valid), len(valid))
    assert await client.stored_ids() == {p.msg_id for p in valid}

    letters = await client.dead_letters()
    assert sorted(letter.msg_id or "" for letter in letters) == sorted(poison)
    for letter in letters:
        case, published = poison[letter.msg_id or ""]
        assert (letter.code, letter.payload) == (case.code, case.payload), case.name
        assert case.reason in letter.reason, (case.name, letter.reason)
        assert (letter.stream, letter.sequence) == (pipeline.nats.stream, published.ack.seq)
        assert letter.subject == published.subject
        assert letter.headers == {"Trace-Id": letter.msg_id}  # the original's own headers
        assert letter.deliveries == 1
        assert letter.failed_at is not None
        assert started_at - timedelta(seconds=1) <= letter.failed_at <= datetime.now(UTC)

    # Counted right after the acks and terms went out; the scrape may just precede that. The
    # DLQ's depth is read with the consumer's gauges, every 5 s.
    async def all_counted() -> Metrics | None:
        metrics = await ingester.metrics()
        counted = metrics.value("ponix_envelopes_dead_lettered_total")
        depth = metrics.value("ponix_dead_letter_messages", stream=pipeline.nats.dlq_stream)
        return metrics if counted >= len(poison) and depth == len(poison) else None

    metrics = await eventually(all_counted, within=10, what="dead letters counted")
    for code in (DECODE_FAILED, INVALID, TOO_LARGE, OUT_OF_RANGE):
        expected = sum(1 for case in cases if case.code == code)
        assert metrics.value("ponix_envelopes_dead_lettered_total", code=code) == expected, code


@pytest.mark.parametrize("trust_payload", [False, True], ids=["bound", "trusted"])
async def test_an_envelope_on_another_organizations_subject_is_dead_lettered(
    pipeline: Pipeline,
    client: PipelineClient,
    launch: ServiceLauncher,
    unique: str,
    trust_payload: bool,
) -> None:
    """A publisher allowed only on globex's subject must not write acme's rows: the tenant is
    bound to the subject unless INGESTER_TRUST_PAYLOAD_ORG says otherwise."""
    pipeline = pipeline.with_env(INGESTER_TRUST_PAYLOAD_ORG=str(trust_payload).lower())
    await launch.start(pipeline)
    own = envelope(envelope_id=f"own-{unique}", organization_id="globex").SerializeToString()
    other = envelope(envelope_id=f"other-{unique}", organization_id="acme").SerializeToString()
    await client.publish_raw(own, msg_id=f"own-{unique}", organization_id="globex")
    sent = await client.publish_raw(other, msg_id=f"other-{unique}", organization_id="globex")
    await client.wait_until_drained(within=30)

    letters = await client.dead_letters()
    if trust_payload:
        assert letters == []
        assert await client.stored_ids() == {f"own-{unique}", f"other-{unique}"}
        return
    assert await client.stored_ids() == {f"own-{unique}"}
    [letter] = letters
    assert letter.code == "envelope.subject_mismatch"
    assert "'acme'" in letter.reason
    assert letter.subject == sent.subject
