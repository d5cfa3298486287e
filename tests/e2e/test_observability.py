"""What the pipeline says about itself: ``/metrics`` agrees with what was published and stored,
``/readyz`` and ``ponix_clickhouse_up`` follow ClickHouse going away and coming back, and every
series the alert rules and the Grafana dashboard (docker/observability) read is on a running
ingester's ``/metrics``."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from pathlib import Path

import pytest

from ponix_devstack import ClickHouseServer
from tests.e2e.conftest import Cli, exact_rows, wait_until
from tests.support.observability import exposed, references
from tests.support.pipeline import Pipeline, PipelineClient, ServiceLauncher, eventually

pytestmark = pytest.mark.e2e

COUNT = 3000
# Series that only appear once their event happened (a nak, a failed insert, ...), labelled by
# its code, or that another service records (the producer's publishes).
ON_EVENT = {
    "ponix_envelopes_nakked_total",
    "ponix_envelopes_terminated_total",
    "ponix_envelopes_dead_lettered_total",
    "ponix_insert_failures_total",
    "ponix_rows_rejected_total",
    "ponix_envelopes_published_total",
    "ponix_envelopes_publish_duplicates_total",
}


def test_metrics_match_the_table_and_readyz_follows_clickhouse(
    cli: Cli, pipeline_env: dict[str, str], clickhouse_server: ClickHouseServer
) -> None:
    cli.env.update(pipeline_env)
    service = cli.start("run", "--count", str(COUNT), "--rate", "5000")
    service.wait_ready()
    table = f"{pipeline_env['CLICKHOUSE_DATABASE']}.processed_envelopes"

    metrics = wait_until(
        lambda: (
            (m := service.metrics()).value("ponix_rows_inserted_total", table=table) == COUNT and m
        ),
        timeout=30,
        what=f"{COUNT} rows inserted",
    )
    assert metrics.value("ponix_envelopes_published_total") == COUNT
    assert metrics.value("ponix_envelopes_publish_duplicates_total") == 0
    assert metrics.value("ponix_envelopes_consumed_total") == COUNT
    assert metrics.value("ponix_envelopes_acked_total") == COUNT
    consumed = metrics.value("ponix_consumed_bytes_total")
    assert consumed > COUNT * 10
    assert metrics.value("ponix_inserted_bytes_total", table=table) == consumed
    assert metrics.value("ponix_end_to_end_lag_seconds_count") >= 1
    assert exact_rows(pipeline_env["CLICKHOUSE_URL"], f"SELECT count() FROM {table} FINAL") == COUNT

    status, body = service.readyz()
    assert (status, body["checks"]["clickhouse"]) == (200, True)
    # Killed, as a crash or an OOM kill would: a clean stop waits out the ingester's open
    # connections (ClickHouse drains them for up to ~10 s), which says nothing more.
    clickhouse_server.kill()
    down = wait_until(
        lambda: (reply := service.readyz())[0] == 503 and reply,
        timeout=15,
        what="/readyz to answer 503",
    )
    assert down[1]["status"] == "not ready"
    assert down[1]["checks"]["clickhouse"] is False
    assert down[1]["checks"]["nats"] is True
    # Pinged every 5 s whether or not anything asks for readiness.
    wait_until(
        lambda: service.metrics().value("ponix_clickhouse_up") == 0,
        timeout=15,
        what="ponix_clickhouse_up 0",
    )

    clickhouse_server.start()
    wait_until(lambda: service.readyz()[0] == 200, timeout=20, what="/readyz back to 200")
    wait_until(
        lambda: service.metrics().value("ponix_clickhouse_up") == 1,
        timeout=15,
        what="ponix_clickhouse_up 1",
    )
    assert service.stop() == 0, service.stderr()[-3000:]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


async def test_every_series_the_rules_and_the_dashboard_read_is_on_an_ingesters_metrics(
    nats_url: str, clickhouse_url: str, clickhouse_db: str, unique: str, tmp_path: Path
) -> None:
    pipeline = Pipeline.isolated(
        nats_url=nats_url,
        clickhouse_url=clickhouse_url,
        unique=unique,
        database=clickhouse_db,
        NATS_STORAGE="memory",
    )
    table = f"{clickhouse_db}.{pipeline.clickhouse.table}"
    async with PipelineClient.connect(pipeline) as client, ServiceLauncher(tmp_path) as launch:
        try:
            ingester = await launch.start(pipeline)
            ledger = await client.publish_synthetic(200)
            await client.wait_until_drained(within=30)

            async def all_stored() -> str | None:
                text = await asyncio.to_thread(_scrape, ingester.http_port)
                return (
                    text if f'ponix_rows_inserted_total{{table="{table}"}} 200.0' in text else None
                )

            text = await eventually(all_stored, within=10, what="200 rows counted")
            described, sampled = exposed(text)
            named = {ref.name: ref.where for ref in references()}
            missing = {name: where for name, where in named.items() if name not in described}
            assert not missing, missing
            silent = {
                name: where
                for name, where in named.items()
                if name not in sampled and name not in ON_EVENT
            }
            assert not silent, silent

            metrics = await ingester.metrics()
            build = [labels for name, labels, _ in metrics.samples if name == "ponix_build_info"]
            assert [labels["service"] for labels in build] == ["ponix-ingester"]
            assert build[0]["version"]
            assert metrics.value("ponix_nats_up", client="ponix-ingester") == 1
            consumer = {"stream": pipeline.nats.stream, "consumer": pipeline.nats.consumer}
            assert metrics.value("ponix_envelopes_acked_total", **consumer) == len(ledger.ids)
            assert metrics.value("ponix_end_to_end_lag_seconds_count", **consumer) >= 1
            assert metrics.value("ponix_dead_letter_messages", stream=pipeline.nats.dlq_stream) == 0
            last_insert_at = metrics.value("ponix_last_insert_timestamp_seconds", table=table)
            assert time.time() - 60 < last_insert_at <= time.time()  # noqa: TID251 - a Unix time
            assert (await ingester.terminate()).code == 0
        finally:
            await client.delete_streams()
