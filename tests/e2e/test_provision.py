"""Only ``ponix provision`` (and the ingester) changes JetStream: it creates what is missing,
prints each change with its old and new value, and refuses a shrink unless allowed. Every other
verb reports a difference in one warning line and leaves the server as it is."""

from __future__ import annotations

import json

import nats
import pytest

from tests.e2e.conftest import Cli, one_line_error

pytestmark = pytest.mark.e2e

WEEK = 7 * 24 * 3600
DAY = 24 * 3600
MONTH = 30 * 24 * 3600


async def _max_age(env: dict[str, str]) -> float:
    nc = await nats.connect(env["NATS_URL"])
    try:
        return float((await nc.jetstream().stream_info(env["NATS_STREAM"])).config.max_age or 0)
    finally:
        await nc.close()


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


async def test_provision_creates_reports_each_change_and_refuses_a_shrink(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    stream, consumer = pipeline_env["NATS_STREAM"], pipeline_env["NATS_CONSUMER"]

    line = one_line_error(cli.run("publish", "--count", "1"))
    assert line.startswith(f"error: nats.stream_missing: stream {stream} does not exist")

    assert cli.ok("provision").splitlines() == [
        f"created stream {stream}",
        f"created dlq_stream {pipeline_env['NATS_DLQ_STREAM']}",
        f"created consumer {stream}/{consumer}",
    ]
    assert cli.ok("provision").startswith("up to date: ")

    shorter = {"NATS_MAX_AGE": str(DAY)}
    change = f"stream.max_age of {stream}: {WEEK}s -> {DAY}s"
    assert cli.ok("provision", "--dry-run", **shorter).splitlines() == [
        f"would change {change} (a shrink: refused without --allow-shrink)"
    ]
    line = one_line_error(cli.run("provision", **shorter))
    assert line.startswith(f"error: nats.shrink_refused: stream {stream}: would shrink ")
    assert f"stream.max_age {WEEK}s -> {DAY}s" in line
    assert await _max_age(pipeline_env) == pytest.approx(WEEK)

    assert cli.ok("provision", "--allow-shrink", **shorter).splitlines() == [f"changed {change}"]
    assert await _max_age(pipeline_env) == pytest.approx(DAY)
    report = json.loads(cli.ok("provision", "--json", **shorter))
    assert (report["created"], report["changes"]) == ([], [])


async def test_publish_status_and_dlq_leave_a_longer_retention_alone_and_say_so(
    cli: Cli, pipeline_env: dict[str, str]
) -> None:
    cli.env.update(pipeline_env)
    cli.ok("migrate")
    cli.ok("provision", NATS_MAX_AGE=str(MONTH))

    published = cli.run("publish", "--count", "3")  # with the default 7-day NATS_MAX_AGE
    assert published.returncode == 0, published.stderr
    assert published.stdout.startswith("published 3 envelopes")
    difference = f"stream.max_age is {MONTH}s (settings: {WEEK}s)"
    warnings = _warnings(published.stderr)
    assert len(warnings) == 1, published.stderr
    assert warnings[0].startswith("warning: nats.drift: left as is")
    assert difference in warnings[0]
    assert await _max_age(pipeline_env) == pytest.approx(MONTH)

    assert f"drift        {difference}" in cli.ok("status")
    status = json.loads(cli.ok("status", "--json"))
    assert status["drift"] == [
        {
            "what": "stream",
            "name": pipeline_env["NATS_STREAM"],
            "field": "max_age",
            "server": f"{MONTH}s",
            "settings": f"{WEEK}s",
        }
    ]
    listed = cli.run("dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert [difference in w for w in _warnings(listed.stderr)] == [True]
    assert await _max_age(pipeline_env) == pytest.approx(MONTH)
