"""docker/compose.cluster.yaml for real: three NATS nodes, two ingesters on one durable consumer,
two ClickHouse replicas; one NATS node killed and one replica stopped while envelopes flow.

With ``CLICKHOUSE_IMAGE`` naming an 18.16 image (``docker/standins.env``), the replicas are
coordinated by ZooKeeper through docker/compose.cluster.zookeeper.yaml (18.16 predates ClickHouse
Keeper); otherwise by the cluster file's Keeper. The test prints which.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest

from ponix_devstack import free_port, port_is_free
from tests.docker.conftest import ComposeProject, envelope_lines, new_project
from tests.e2e.conftest import Cli, clean_environment, wait_until

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

STANDINS = Path(__file__).parent / "standins"
PHASE = 4_000
REPLICAS = ("clickhouse-1", "clickhouse-2")


def _uses_zookeeper() -> bool:
    """18.16 has no Keeper: tags 18.x/19.x/20.x/21.x coordinate through ZooKeeper."""
    tag = os.environ.get("CLICKHOUSE_IMAGE", "").rpartition(":")[2]
    major = tag.split(".")[0]
    return major.isdigit() and int(major) < 22


def _build_zookeeper_standin() -> None:
    """A ``local/*`` ZOOKEEPER_IMAGE that is not there yet is built from Debian's package."""
    image = os.environ.get("ZOOKEEPER_IMAGE", "")
    if not image.startswith("local/") or _image_exists(image):
        return
    base = os.environ.get("DEBIAN_IMAGE", "debian:bookworm")
    subprocess.run(
        ["docker", "build", "--quiet", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
         "-f", str(STANDINS / "zookeeper.Dockerfile"), "-t", image, str(STANDINS)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip


def _image_exists(image: str) -> bool:
    inspect = ["docker", "image", "inspect", image]
    return subprocess.run(inspect, capture_output=True, check=False, timeout=30).returncode == 0


@pytest.fixture
def cluster(docker_compose: None) -> Iterator[ComposeProject]:
    files = ["compose.cluster.yaml"]
    if _uses_zookeeper():
        files.append("compose.cluster.zookeeper.yaml")
        _build_zookeeper_standin()
    # One host port per ingester replica: two adjacent ones.
    low = free_port()
    while not port_is_free(low + 1):
        low = free_port()
    extra = {"INGESTER_METRICS_HOST_PORTS": f"{low}-{low + 1}"}
    project = new_project(*files, **extra)
    try:
        yield project
    finally:
        project.down()


def test_cluster_stores_everything_through_a_nats_node_kill_and_a_replica_stop(
    cluster: ComposeProject, tmp_path: Path
) -> None:
    stack = cluster
    stack.run("build", timeout=900)
    stack.run("up", "--detach", "--wait", "--wait-timeout", "300", timeout=360)
    if _uses_zookeeper():
        asked = stack.run("exec", "-T", "clickhouse-keeper", "zkServer.sh", "version").stdout
    else:
        asked = stack.run("exec", "-T", "clickhouse-keeper", "clickhouse", "keeper", "--version")
        asked = asked.stdout
    coordinator = next(line for line in asked.splitlines() if "ersion" in line)
    image = os.environ.get("CLICKHOUSE_IMAGE", "the default image")
    print(f"\n[cluster] ClickHouse {image}; coordinator: {coordinator.strip()}")

    env = stack.env
    secret = env["NATS_PASSWORD"]
    nats_url = f"nats://ponix:{secret}@127.0.0.1:{env['NATS_HOST_PORT']}"
    cli = Cli(tmp_path, clean_environment(NATS_URL=nats_url, NATS_REPLICAS="3"))
    organization = f"cluster-{uuid4().hex[:8]}"

    def stored(replica: str) -> int:
        sql = (
            "SELECT count() FROM ponix.processed_envelopes_local FINAL "
            f"WHERE organization_id = '{organization}'"
        )
        done = stack.run(
            "exec", "-T", replica, "clickhouse-client",
            "--user", "ponix", "--password", secret, "--query", sql,
        )  # fmt: skip
        return int(done.stdout.strip())

    def publish(start: int) -> bool:
        """Publish one phase; False when NATS refused it (a retry is idempotent: same ids)."""
        lines = envelope_lines(organization, start, PHASE)
        done = cli.run("publish", "--file", "-", "--json", stdin=lines, timeout=300)
        if done.returncode != 0:
            refusals.append(done.stderr.strip().splitlines()[-1])
            return False
        return True

    refusals: list[str] = []
    assert publish(0), refusals
    # Mid-stream: the ingesters are still draining the first phase.
    stack.run("kill", "nats-3")
    stack.run("stop", "clickhouse-2")
    began = time.monotonic()
    # Until JetStream has moved the leaders nats-3 held, requests about those streams time out.
    wait_until(lambda: publish(PHASE) or None, timeout=120, what="a publish with nats-3 down")
    print(
        f"[cluster] published with nats-3 down after {time.monotonic() - began:.1f} s, "
        f"{len(refusals)} refused attempt(s) before: {refusals[:1]}"
    )
    wait_until(lambda: stored("clickhouse-1") == 2 * PHASE or None, timeout=240, what="phase 2")

    stack.run("start", "nats-3", "clickhouse-2")
    assert publish(2 * PHASE), refusals
    total = 3 * PHASE
    for replica in REPLICAS:
        wait_until(
            lambda replica=replica: stored(replica) == total or None,
            timeout=300,
            what=f"{total} rows on {replica}",
        )

    delivered = []
    for index in (1, 2):
        done = stack.run(
            "exec", "-T", "--index", str(index), "ingester", "python", "-c",
            "import urllib.request; print(urllib.request.urlopen("
            "'http://127.0.0.1:9464/metrics').read().decode())",
        )  # fmt: skip
        acked = [
            float(line.split()[-1])
            for line in done.stdout.splitlines()
            if line.startswith("ponix_envelopes_acked_total")
        ]
        delivered.append(sum(acked))
    print(f"[cluster] acked per ingester: {delivered}")
    assert all(count > 0 for count in delivered), delivered
