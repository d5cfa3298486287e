"""The DLQ round trip: poison is dead-lettered with its code, listed, and after the operator
fixes the cause (a size limit too low for real envelopes) redriven and stored."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import nats
import pytest

from ponix_proto import new_envelope_id, pb
from tests.e2e.conftest import Cli, exact_rows, wait_until

pytestmark = pytest.mark.e2e


def _envelope(*, blob: str = "", occurred: bool = True) -> pb.ProcessedEnvelope:
    env = pb.ProcessedEnvelope(id=new_envelope_id(), organization_id="acme", end_device_id="d-1")
    if occurred:
        env.occurred_at.FromDatetime(datetime.now(UTC))
    env.data.update({"temperature": 21.5, "blob": blob})
    return env


async def _publish_raw(url: str, subject: str, envelopes: list[pb.ProcessedEnvelope]) -> None:
    """As a producer outside Ponix would: raw nats-py publishes with Nats-Msg-Id."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for env in envelopes:
            await js.publish(subject, env.SerializeToString(), headers={"Nats-Msg-Id": env.id})
    finally:
        await nc.close()


async def _wait_for_dead_letters(url: str, stream: str, count: int) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 20
        while (await js.stream_info(stream)).state.messages < count:
            assert time.monotonic() < deadline, f"{count} dead letters in {stream}"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


def _letters(cli: Cli) -> list[dict[str, object]]:
    letters: list[dict[str, object]] = json.loads(cli.ok("dlq", "list", "--json"))
    return letters


async def test_poison_is_listed_and_a_fixed_envelope_is_redriven_and_stored(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    ingester = cli.start("ingest", INGESTER_MAX_ENVELOPE_BYTES="1024")
    ingester.wait_ready()

    good = _envelope()
    invalid = _envelope(occurred=False)
    large = _envelope(blob="x" * 4000)  # a real envelope, larger than the 1 KiB limit
    subject = f"{pipeline_env['NATS_SUBJECT_PREFIX']}.acme"
    await _publish_raw(pipeline_env["NATS_URL"], subject, [good, invalid, large])

    await _wait_for_dead_letters(pipeline_env["NATS_URL"], pipeline_env["NATS_DLQ_STREAM"], 2)
    letters = _letters(cli)
    codes = {str(letter["code"]): letter for letter in letters}
    assert set(codes) == {"envelope.invalid", "envelope.too_large"}
    assert codes["envelope.invalid"]["reason"] == "occurred_at is missing"
    assert codes["envelope.too_large"]["msg_id"] == large.id

    # The fix: a limit that fits real envelopes, then an ingester restarted with it.
    assert ingester.stop() == 0
    ingester = cli.start("ingest", INGESTER_MAX_ENVELOPE_BYTES="65536")
    ingester.wait_ready()
    seq = str(codes["envelope.too_large"]["seq"])
    # Deferred while the original's Nats-Msg-Id is inside the (1 s) duplicate window.
    wait_until(
        lambda: "republished to" in cli.ok("dlq", "redrive", "--seq", seq),
        timeout=15,
        what="the redrive to be republished",
    )

    table = f"{pipeline_env['CLICKHOUSE_DATABASE']}.processed_envelopes"
    stored = f"SELECT count() FROM {table} FINAL WHERE id = '{large.id}'"
    wait_until(
        lambda: exact_rows(pipeline_env["CLICKHOUSE_URL"], stored) == 1,
        timeout=20,
        what="the redriven row",
    )
    assert cli.ok("query", stored) == "1\n"
    assert [letter["code"] for letter in _letters(cli)] == ["envelope.invalid"]

    audit = json.loads(cli.ok("audit", "--json"))
    assert audit["ok"] is True
    assert audit["missing"] == []
    assert [d["code"] for d in audit["dead_lettered"]] == ["envelope.invalid"]
    assert audit["stored"] == 2  # the good one and the redriven one
    assert ingester.stop() == 0
