"""The first session a newcomer has: ``ponix dev`` in one shell, the other verbs in another.

The other verbs are given no URL: they find the stack through ``.ponix/env`` in the working
directory, as a newcomer's second shell does. The ports are read, never assumed.
"""

from __future__ import annotations

import signal
import time

import pytest

from ponix_cli.envfile import read_env_file
from tests.e2e.conftest import (
    Cli,
    alive,
    children_of,
    exact_rows,
    processes_mentioning,
    wait_until,
)

pytestmark = pytest.mark.e2e

COUNT = 5000
EXACT_COUNT = "SELECT count() FROM ponix.processed_envelopes FINAL"


def test_dev_publish_query_status_audit_then_ctrl_c(cli: Cli) -> None:
    dev = cli.start("dev", "--no-producer")
    data_dir = cli.cwd / ".ponix"
    env_file = data_dir / "env"
    dev.wait_ready()
    assert env_file.exists()
    assert "Ponix dev stack is up" in dev.stdout()
    assert "ponix publish --count 1000" in dev.stdout()
    second = cli.run("dev")
    assert second.returncode == 1
    assert f"already runs on {data_dir}" in second.stderr

    published = cli.ok("publish", "--count", str(COUNT))
    assert published.startswith(f"published {COUNT:,} envelopes in ")
    assert "duplicates: 0, bad lines: 0" in published

    clickhouse_url = read_env_file(env_file)["CLICKHOUSE_URL"]
    wait_until(
        lambda: exact_rows(clickhouse_url, EXACT_COUNT) == COUNT,
        timeout=30,
        what=f"{COUNT} rows in ponix.processed_envelopes",
    )
    assert cli.ok("query", EXACT_COUNT) == f"{COUNT}\n"

    status = cli.ok("status")
    assert f"{COUNT:,} messages" in status
    assert "pending 0, ack pending 0, redelivered 0" in status
    assert "dead letters 0" in status
    assert f"{COUNT:,} exact (FINAL)" in status

    audit = cli.run("audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert audit.stdout.strip().endswith("stored exactly once.")

    metrics = dev.metrics()
    assert metrics.value("ponix_rows_inserted_total") == COUNT
    assert metrics.value("ponix_envelopes_acked_total") == COUNT

    children = children_of(dev.proc.pid)
    assert len(children) >= 2  # nats-server and ClickHouse at least
    started = time.monotonic()
    assert dev.stop(signal.SIGINT) == 0, dev.stderr()[-3000:]
    assert time.monotonic() - started < 10
    assert not env_file.exists()
    assert [pid for pid in children if alive(pid)] == []
    assert processes_mentioning(str(data_dir)) == []
    assert "stopped; the data stays in" in dev.stderr()
