"""A 3-replica stream on a real 3-node NATS cluster: a client with the default settings (1
replica) leaves it alone, provisioning refuses to lower it unless allowed.

The cluster is three local nats-server processes routed together, started once for the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats.errors
import pytest
from nats.js.api import StreamConfig

from ponix_config import NatsSettings
from ponix_devstack import find_nats_server, free_port
from ponix_nats import (
    NatsUnavailableError,
    ProvisioningError,
    ShrinkRefusedError,
    check_jetstream,
    connect,
    ensure_jetstream,
)
from tests.e2e.conftest import clean_environment

pytestmark = pytest.mark.integration

NODES = 3


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``nats://...`` of a 3-node JetStream cluster (every node's client URL, comma-separated)."""
    root = tmp_path_factory.mktemp("nats-cluster")
    binary = find_nats_server()
    client_ports = [free_port() for _ in range(NODES)]
    route_ports = [free_port() for _ in range(NODES)]
    routes = ", ".join(f"nats://127.0.0.1:{p}" for p in route_ports)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for n in range(NODES):
            store = root / f"n{n}"
            store.mkdir()
            config = store / "nats.conf"
            config.write_text(
                f'server_name: "n{n}"\n'
                f'listen: "127.0.0.1:{client_ports[n]}"\n'
                f'jetstream {{ store_dir: "{store}" }}\n'
                f'cluster {{ name: "ponix-test", listen: "127.0.0.1:{route_ports[n]}", '
                f"routes: [{routes}] }}\n"
            )
            with (store / "nats.log").open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [str(binary), "--config", str(config)], stdout=log, stderr=subprocess.STDOUT
                    )
                )
        yield ",".join(f"nats://127.0.0.1:{p}" for p in client_ports)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def settings(cluster_url: str, unique: str) -> NatsSettings:
    return NatsSettings(
        url=cluster_url,
        stream=f"S_{unique}",
        subject_prefix=f"env_{unique}",
        consumer=f"c_{unique}",
        dlq_stream=f"S_{unique}_DLQ",
        dlq_subject=f"dlq_{unique}",
        storage="memory",
        connect_timeout=2.0,
    )


@pytest.fixture
async def three_replicas(settings: NatsSettings) -> AsyncIterator[NatsSettings]:
    """The stream, DLQ stream and consumer provisioned with 3 replicas, once the cluster has
    elected its JetStream meta leader."""
    wanted = settings.model_copy(update={"replicas": 3})
    deadline = time.monotonic() + 30
    while True:
        nc = None
        try:
            # The nodes may still be starting, then electing a JetStream meta leader.
            nc = await connect(settings, name="ponix-replica-tests")
            js = nc.jetstream(timeout=2.0)
            await ensure_jetstream(js, wanted)
            break
        except (NatsUnavailableError, ProvisioningError):
            if nc is not None:
                await nc.close()
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)
    yield wanted
    for stream in (settings.stream, settings.dlq_stream):
        with contextlib.suppress(nats.errors.Error):
            await js.delete_stream(stream)
    await nc.close()


async def _config(settings: NatsSettings) -> StreamConfig:
    nc = await connect(settings, name="ponix-replica-tests")
    try:
        config: StreamConfig = (await nc.jetstream().stream_info(settings.stream)).config
        return config
    finally:
        await nc.close()


async def test_publish_with_one_replica_in_its_settings_leaves_three_alone(
    settings: NatsSettings, three_replicas: NatsSettings, tmp_path: Path
) -> None:
    env = clean_environment(
        NATS_URL=settings.url,
        NATS_STREAM=settings.stream,
        NATS_SUBJECT_PREFIX=settings.subject_prefix,
        NATS_CONSUMER=settings.consumer,
        NATS_DLQ_STREAM=settings.dlq_stream,
        NATS_DLQ_SUBJECT=settings.dlq_subject,
        NATS_STORAGE="memory",
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ponix_cli", "publish", "--count", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("published 3 envelopes")
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr
    assert "stream.num_replicas is 3 (settings: 1)" in warnings[0]
    assert "dlq_stream.num_replicas is 3 (settings: 1)" in warnings[0]
    assert (await _config(settings)).num_replicas == 3


async def test_provisioning_refuses_to_lower_replicas_unless_allowed(
    settings: NatsSettings, three_replicas: NatsSettings
) -> None:
    nc = await connect(settings, name="ponix-replica-tests")
    try:
        js = nc.jetstream(timeout=5.0)
        check = await check_jetstream(js, settings)
        assert {c.path for c in check.drift if c.shrinks} == {
            "stream.num_replicas",
            "dlq_stream.num_replicas",
        }
        with pytest.raises(ShrinkRefusedError) as refused:
            await ensure_jetstream(js, settings)
        assert "stream.num_replicas 3 -> 1" in str(refused.value)
        assert (await js.stream_info(settings.stream)).config.num_replicas == 3

        done = await ensure_jetstream(js, settings, allow_shrink=True)
        assert set(done.updated) == {"stream.num_replicas", "dlq_stream.num_replicas"}
        assert (await js.stream_info(settings.stream)).config.num_replicas == 1
    finally:
        await nc.close()
