"""Memory is bounded by bytes: 200 KiB envelopes through a refusal (the table detached while the
server answers queries).

The writer holds at most ``CLICKHOUSE_MAX_IN_FLIGHT_BYTES`` (64 MiB by default) of payload and
the consumer's pull requests carry ``max_bytes``, so while the store refuses, the ingester's RSS
stays on a plateau however much piles up in the stream: the largest RSS of the refusal's second
half is no more than its first half's, plus noise. Catching up on the backlog afterwards, with
up to 64 MiB in flight, it stays under the idle RSS plus four times that bound.

Settings: the shipped defaults. 200 KiB envelopes fit under them (``INGESTER_MAX_ENVELOPE_BYTES``
256 KiB, ``NATS_MAX_MSG_SIZE`` 1 MiB), so neither is raised. Short: refused for 10 s at 20
envelopes/s (``make test``); long: 60 s at 20/s, 240 MiB published during the refusal.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from ponix_producer import OutgoingEnvelope
from ponix_proto import new_envelope_id, pb
from tests.faults.refusal import Fault, assert_held_in_place, refusal
from tests.support.client import PipelineClient
from tests.support.services import ServiceLauncher

ENVELOPE_BYTES = 200 * 1024
MAX_IN_FLIGHT_MB = 64
# RSS beyond the idle ingester: the held bytes, their rows (data JSON as long again), and the
# NATS client's buffers; far below what the refusal publishes (240 MiB in the long run).
RSS_GROWTH_LIMIT_MB = 4 * MAX_IN_FLIGHT_MB
# A plateau, not a slope: the second half of the refusal may add no more than this.
PLATEAU_NOISE_MB = 16


def big_envelope() -> OutgoingEnvelope:
    """A valid envelope of about 200 KiB: its ``data`` holds a random hex string."""
    envelope_id = new_envelope_id()
    now = datetime.now(UTC)
    env = pb.ProcessedEnvelope(
        id=envelope_id, organization_id="org-big", end_device_id="device-big"
    )
    env.occurred_at.FromDatetime(now)
    env.processed_at.FromDatetime(now)
    env.data.update({"blob": os.urandom(ENVELOPE_BYTES // 2 - 64).hex(), "n": 1.0})
    return OutgoingEnvelope(env.SerializeToString(), envelope_id, "org-big")


async def big_envelopes(
    client: PipelineClient, launch: ServiceLauncher, *, refused_for: float, rate: float, size: str
) -> None:
    table = client.pipeline.table
    fault = Fault(
        refuse=lambda: client.query(f"DETACH TABLE {table}"),
        restore=lambda: client.query(f"ATTACH TABLE {table}"),
    )
    run = await refusal(
        client,
        launch,
        scenario="big_envelopes_bytes_bound",
        size=size,
        fault=fault,
        refused_for=refused_for,
        rate=rate,
        envelopes=big_envelope,
        chunk=10,
        faults={"envelope_kib": ENVELOPE_BYTES // 1024, "refusal": "table detached"},
    )
    assert_held_in_place(run)
    first, second = run.rss_halves()
    start = run.figures.rss_start_mb or 0.0
    in_flight = run.figures.notes["max_in_flight_mb"]
    assert in_flight <= MAX_IN_FLIGHT_MB, f"{in_flight} MiB in flight"
    peak = run.figures.rss_max_mb or 0.0
    assert peak - start <= RSS_GROWTH_LIMIT_MB, f"RSS {start} -> {peak} MB"
    assert second <= first + PLATEAU_NOISE_MB, f"RSS still growing: {first} then {second} MB"


@pytest.mark.faults
async def test_big_envelopes_through_a_refusal_keep_rss_flat(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await big_envelopes(client, launch, refused_for=10.0, rate=20, size="short")


@pytest.mark.faults_long
@pytest.mark.timeout(900)
async def test_big_envelopes_through_a_60_s_refusal(
    client: PipelineClient, launch: ServiceLauncher
) -> None:
    await big_envelopes(client, launch, refused_for=60.0, rate=20, size="long")
