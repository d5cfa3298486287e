"""What the pipeline says about itself: ``/metrics`` counters agree with what was published and
stored, and ``/readyz`` follows ClickHouse going away and coming back."""

from __future__ import annotations

import pytest

from ponix_devstack import ClickHouseServer
from tests.e2e.conftest import Cli, exact_rows, wait_until

pytestmark = pytest.mark.e2e

COUNT = 3000


def test_metrics_match_the_table_and_readyz_follows_clickhouse(
    cli: Cli, pipeline_env: dict[str, str], clickhouse_server: ClickHouseServer
) -> None:
    cli.env.update(pipeline_env)
    service = cli.start("run", "--count", str(COUNT), "--rate", "5000")
    service.wait_ready()

    def stored() -> dict[str, float] | None:
        metrics = service.metrics()
        return metrics if metrics.get("ponix_rows_inserted_total") == COUNT else None

    metrics = wait_until(stored, timeout=30, what=f"{COUNT} rows inserted")
    assert metrics["ponix_envelopes_published_total"] == COUNT
    assert metrics["ponix_envelopes_publish_duplicates_total"] == 0
    assert metrics["ponix_envelopes_consumed_total"] == COUNT
    assert metrics["ponix_envelopes_acked_total"] == COUNT
    table = f"{pipeline_env['CLICKHOUSE_DATABASE']}.processed_envelopes"
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

    clickhouse_server.start()
    wait_until(lambda: service.readyz()[0] == 200, timeout=20, what="/readyz back to 200")
    assert service.stop() == 0, service.stderr()[-3000:]
