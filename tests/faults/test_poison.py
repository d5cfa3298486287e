"""Scenario 6: poison mixed into valid traffic.

Garbage bytes, a protobuf of another type, an envelope over INGESTER_MAX_ENVELOPE_BYTES, and
timestamps the table cannot hold: every one is dead-lettered (copy first, then term) on its first
delivery and every valid envelope around them is stored, whatever batch they share.

Settings: the shipped defaults (the oversized poison is over the default 256 KiB).
"""

from __future__ import annotations

import os
import random
import time

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from ponix_ingester import IngesterSettings
from ponix_proto import new_envelope_id
from tests.faults.figures import Figures, record
from tests.faults.harness import Book, drain_and_judge, service_rss
from tests.support.pipeline import (
    Ledger,
    Pipeline,
    PipelineClient,
    Published,
    ServiceLauncher,
    envelope,
)

MAX_ENVELOPE_BYTES = IngesterSettings().max_envelope_bytes


def poison_kinds(rng: random.Random) -> dict[str, bytes]:
    stamp = timestamp_pb2.Timestamp(seconds=1_790_000_000)
    other = struct_pb2.Struct()
    other.update({"not": "an envelope", "n": 1.0})
    return {
        "garbage": rng.randbytes(rng.randint(1, 200)),
        "wrong_type_timestamp": stamp.SerializeToString(),
        "wrong_type_struct": other.SerializeToString(),
        "empty": b"",
        "oversized": envelope(
            envelope_id=new_envelope_id(), data={"blob": "x" * (MAX_ENVELOPE_BYTES + 100)}
        ).SerializeToString(),
        "occurred_before_1970": envelope(
            envelope_id=new_envelope_id(), occurred_at=-86_400
        ).SerializeToString(),
        "occurred_after_2106": envelope(
            envelope_id=new_envelope_id(), occurred_at=2**32 + 5
        ).SerializeToString(),
        "processed_after_2106": envelope(
            envelope_id=new_envelope_id(), processed_at=2**33
        ).SerializeToString(),
        "no_device": envelope(
            envelope_id=new_envelope_id(), end_device_id=None
        ).SerializeToString(),
        "no_occurred_at": envelope(
            envelope_id=new_envelope_id(), occurred_at=None
        ).SerializeToString(),
    }


async def poison_mixed_in(
    pipeline: Pipeline,
    launch: ServiceLauncher,
    *,
    valid: int,
    rounds: int,
    size: str,
    kinds: dict[str, bytes] | None = None,
    scenario: str = "poison_mixed_in",
    backlog_first: bool = False,
) -> None:
    started = time.monotonic()
    rng = random.Random(6)
    figures = Figures(scenario, size)
    book = Book()
    async with PipelineClient.connect(pipeline, provision=True) as client:
        if not backlog_first:
            ingester = await launch.start(pipeline)
        per_round = valid // rounds
        for round_ in range(rounds):
            # Valid traffic first, then poison published into the middle of it.
            book.add(await client.publish_synthetic(per_round, seed=round_))
            poison = Ledger()
            for kind, payload in (kinds or poison_kinds(rng)).items():
                msg_id = f"poison-{kind}-{round_}-{os.urandom(4).hex()}"
                published: Published = await client.publish_raw(payload, msg_id=msg_id)
                poison.published.append(published)
            book.add(poison, poison=True)
            book.add(await client.publish_synthetic(per_round, seed=1000 + round_))
        if backlog_first:
            # Every batch is full, so the poison shares its batch with valid envelopes.
            ingester = await launch.start(pipeline)
        figures.rss_start_mb = service_rss(ingester)
        outcome = await drain_and_judge(client, book, within=60 if size == "short" else 600)
        letters = await client.dead_letters()
        figures.rss_end_mb = service_rss(ingester)
        await ingester.terminate()
        await client.delete_streams()
    figures.take_outcome(outcome, started)
    figures.notes = {"codes": sorted({letter.code for letter in letters})}
    record(figures)
    assert outcome.verdict.clean, outcome.verdict.summary()
    assert outcome.verdict.dead_lettered == len(book.poison)
    assert all(letter.code.startswith("envelope.") for letter in letters), figures.notes
    assert all(letter.deliveries == 1 for letter in letters), "poison is termed at once"
    assert outcome.max_deliveries == 1, "a valid envelope was redelivered next to poison"
    assert outcome.naks == 0


@pytest.mark.faults
async def test_poison_is_dead_lettered_and_valid_traffic_stored(
    pipeline: Pipeline, launch: ServiceLauncher
) -> None:
    await poison_mixed_in(pipeline, launch, valid=2000, rounds=2, size="short")


def _bad_nanos(kind: str) -> bytes:
    if kind == "id_less":
        # No id: one is derived from occurred_at, which must be checked before it is used.
        bad = envelope(envelope_id=None, occurred_at=1_790_000_000)
        bad.occurred_at.nanos = -1
    else:
        # With an id, at the epoch: unchecked, the row would get occurred_at = -1 s, which
        # DateTime (UInt32) cannot hold.
        bad = envelope(envelope_id=new_envelope_id(), occurred_at=0)
        bad.occurred_at.nanos = -1
    return bad.SerializeToString()


@pytest.mark.faults
@pytest.mark.parametrize("kind", ["id_less", "with_id_at_epoch"])
async def test_poison_with_invalid_timestamp_nanos_is_dead_lettered_too(
    pipeline: Pipeline, launch: ServiceLauncher, kind: str
) -> None:
    """Timestamp.nanos outside [0, 1e9) (found by the decoder fuzzers) is poison,
    ``envelope.timestamp_out_of_range``, termed on its first delivery; the valid envelopes
    sharing its batch are stored."""
    await poison_mixed_in(
        pipeline,
        launch,
        valid=200,
        rounds=1,
        size="short",
        kinds={f"nanos_out_of_range_{kind}": _bad_nanos(kind)},
        scenario=f"poison_invalid_nanos_{kind}",
        backlog_first=True,
    )


@pytest.mark.faults_long
@pytest.mark.timeout(600)
async def test_poison_mixed_into_a_long_run(pipeline: Pipeline, launch: ServiceLauncher) -> None:
    await poison_mixed_in(pipeline, launch, valid=100_000, rounds=50, size="long")
