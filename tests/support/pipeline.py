"""Black-box helpers for tests that run the real pipeline: services as child processes, driven
only through their environment, observed only through NATS, ClickHouse, logs and ``/metrics``.

Three pieces, used together::

    pipeline = Pipeline.isolated(
        nats_url=nats_url, clickhouse_url=clickhouse_url, unique=unique, database=clickhouse_db
    )
    async with PipelineClient.connect(pipeline) as client, ServiceLauncher(tmp_path) as launch:
        ingester = await launch.start(pipeline)                 # python -m ponix_ingester
        ledger = await client.publish_synthetic(1000)           # ids that got a PubAck
        await client.wait_until_drained(within=30)              # num_pending == ack_pending == 0
        counts = await client.counts()                          # count()/uniqExact(id) FINAL
        assert counts.rows == counts.distinct_ids == len(ledger)
        assert await client.dead_letters() == []
        exit_ = await ingester.terminate()                      # SIGTERM, then SIGKILL at timeout
        assert exit_.code == 0
        await client.delete_streams()

* :class:`Pipeline`: one test's names (stream, subjects, consumer, DLQ, database) and env vars, as
  settings objects for the test process and as the environment of a child service.
* :class:`ServiceLauncher` / :class:`ServiceProcess`: a service started with that environment;
  its JSON log lines (awaitable: ``wait_for_log``), its ``/metrics``, SIGTERM/SIGKILL, exit code.
* :class:`PipelineClient`: publishes (synthetic envelopes or raw payloads, with a :class:`Ledger`
  of PubAcks) and reads the state: consumer info, exact counts, stored rows, dead letters.

Waiting: a child's log line is an event (the reader wakes the waiters). Server state (consumer
info, row counts) has no event to wait on, so :func:`eventually` polls it at a short interval
against one monotonic deadline.

Each piece lives in a module of its own: ``environment`` (names and env), ``services`` (child
services), ``client`` (publishing with a ledger, reading the state) and ``waits``; this module
gathers them under one name.
"""

from __future__ import annotations

from tests.support.client import (
    Ledger,
    PipelineClient,
    Published,
    StoredRow,
    TableCounts,
    envelope,
)
from tests.support.environment import Pipeline
from tests.support.services import (
    READY_EVENT,
    SERVICE_MODULES,
    Exit,
    LogLine,
    Metrics,
    ServiceExitedError,
    ServiceLauncher,
    ServiceName,
    ServiceProcess,
)
from tests.support.waits import eventually

__all__ = (
    "READY_EVENT",
    "SERVICE_MODULES",
    "Exit",
    "Ledger",
    "LogLine",
    "Metrics",
    "Pipeline",
    "PipelineClient",
    "Published",
    "ServiceExitedError",
    "ServiceLauncher",
    "ServiceName",
    "ServiceProcess",
    "StoredRow",
    "TableCounts",
    "envelope",
    "eventually",
)
