"""docker/compose.yaml as a user runs it: build, up, publish from the host, stop and start the
ingester, count exactly inside the ClickHouse container, tear down.

The stack's own producer keeps publishing synthetic envelopes (organizations ``org-*``); this
test publishes under an organization of its own and counts only those, exactly (``FINAL``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from uuid import uuid4

import pytest

from tests.docker.conftest import ComposeProject, envelope_lines
from tests.e2e.conftest import Cli, clean_environment, http_json, wait_until

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1200)]

FIRST = 10_000
WHILE_DOWN = 2_500


def _consumer(cli: Cli) -> dict[str, int]:
    done = cli.run("status", "--json")
    assert done.returncode == 0, done.stderr
    consumer: dict[str, int] = json.loads(done.stdout)["consumer"]
    return consumer


def test_compose_stack_stores_everything_across_an_ingester_restart(
    compose_project: ComposeProject, tmp_path: Path
) -> None:
    stack = compose_project
    stack.run("build", timeout=900)
    stack.run("up", "--detach", "--wait", "--wait-timeout", "240", timeout=300)

    for service in stack.services():
        state = stack.container(service)["State"]
        assert state["Status"] == "running", service
        assert state["Health"]["Status"] == "healthy", service

    env = stack.env
    secret = env["NATS_PASSWORD"]
    nats_url = f"nats://ponix:{secret}@127.0.0.1:{env['NATS_HOST_PORT']}"
    clickhouse_url = f"clickhouse://ponix:{secret}@127.0.0.1:{env['CLICKHOUSE_HOST_PORT']}/ponix"
    cli = Cli(tmp_path, clean_environment(NATS_URL=nats_url, CLICKHOUSE_URL=clickhouse_url))
    status, body = http_json(f"http://127.0.0.1:{env['INGESTER_METRICS_HOST_PORT']}/readyz")
    assert status == 200, body

    organization = f"compose-{uuid4().hex[:8]}"
    sql = (
        "SELECT count() FROM ponix.processed_envelopes FINAL "
        f"WHERE organization_id = '{organization}'"
    )

    def stored() -> int:
        done = stack.run(
            "exec", "-T", "clickhouse", "clickhouse-client",
            "--user", "ponix", "--password", secret, "--query", sql,
        )  # fmt: skip
        return int(done.stdout.strip())

    def publish(start: int, count: int) -> None:
        lines = envelope_lines(organization, start, count)
        done = cli.run("publish", "--file", "-", "--json", stdin=lines, timeout=300)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["published"] == count

    publish(0, FIRST)
    wait_until(lambda: stored() == FIRST or None, timeout=180, what=f"{FIRST} rows")

    began = time.monotonic()
    stack.run("stop", "ingester", timeout=60)
    stop_s = time.monotonic() - began
    assert stack.container("ingester")["State"]["ExitCode"] == 0
    print(f"\n[compose] `stop ingester`: exit 0 in {stop_s:.1f} s")
    assert _consumer(cli)["ack_pending"] == 0

    publish(FIRST, WHILE_DOWN)
    assert _consumer(cli)["pending"] >= WHILE_DOWN
    assert stored() == FIRST

    stack.run("start", "ingester", timeout=60)
    total = FIRST + WHILE_DOWN
    wait_until(lambda: stored() == total or None, timeout=180, what=f"{total} rows")

    # With the producer stopped too, the whole stream must drain and audit clean.
    assert stack.run("stop", "producer", timeout=60).returncode == 0
    assert stack.container("producer")["State"]["ExitCode"] == 0

    def drained() -> bool:
        consumer = _consumer(cli)
        return consumer["pending"] == 0 and consumer["ack_pending"] == 0

    wait_until(drained, timeout=120, what="the consumer drained")
    audit = cli.run("audit", "--json", timeout=120)
    report = json.loads(audit.stdout)
    assert audit.returncode == 0, (report["missing"][:5], report["duplicated"][:5])
    assert report["missing"] == []
    assert report["duplicated_total"] == 0

    down = stack.down()
    assert down.returncode == 0, down.stderr
    assert stack.volumes() == []
