"""``ponix run``, ``produce`` and ``ingest``: the services in the foreground, under the runner.

They read the same variables as the service images (``NATS_*``, ``CLICKHOUSE_*``,
``PRODUCER_*``, ``INGESTER_*``, ``LOG_*``, ``HTTP_*``), log structured lines to stderr and stop
cleanly on SIGINT/SIGTERM (exit 0).
"""

from __future__ import annotations

import enum
import os
from typing import Annotated, Final

import typer

from ponix_cli import console
from ponix_cli.options import ClickHouseUrl, NatsUrl
from ponix_cli.targets import use_targets

# The port of /metrics, /healthz and /readyz in the service images (HTTP_PORT's default).
METRICS_PORT: Final = 9464


class Process(enum.StrEnum):
    """The processes the all-in-one can run."""

    PRODUCER = "producer"
    INGESTER = "ingester"


Rate = Annotated[
    float | None,
    typer.Option(
        "--rate",
        min=0.001,
        help="Synthetic envelopes per second (PRODUCER_RATE, default 10).",
        show_default=False,
    ),
]
Count = Annotated[
    int | None,
    typer.Option(
        "--count",
        min=0,
        help="Stop producing after this many (PRODUCER_COUNT; 0 = forever).",
        show_default=False,
    ),
]

RUN_EPILOG = """
**Examples**

```
ponix run                                  # producer and ingester (PONIX_PROCESSES)
ponix run --process ingester               # only the ingester
ponix run -p producer --rate 500           # only the producer, 500 envelopes/s
HTTP_PORT=9465 ponix run -p ingester       # /metrics, /healthz, /readyz on :9465
```
"""

PRODUCE_EPILOG = """
**Examples**

```
ponix produce                      # 10 synthetic envelopes/s until Ctrl-C
ponix produce --rate 1000 --count 50000
```
"""

INGEST_EPILOG = """
**Examples**

```
ponix ingest
INGESTER_MAX_ENVELOPE_BYTES=1048576 ponix ingest
NATS_URL=nats://nats:4222 CLICKHOUSE_URL=clickhouse://ch:9000 ponix ingest
```
"""


def run(
    process: Annotated[
        list[Process] | None,
        typer.Option(
            "--process",
            "-p",
            help="A process to run; repeat for both. Default: PONIX_PROCESSES, else both.",
            show_default=False,
        ),
    ] = None,
    rate: Rate = None,
    count: Count = None,
    nats_url: NatsUrl = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Run the all-in-one service (producer and ingester under one runner) until Ctrl-C.

    The ingester applies migrations, waits for ClickHouse and NATS (up to
    INGESTER_STARTUP_DEADLINE), provisions the stream, the DLQ stream and the durable
    consumer, then stores every envelope it fetches. Metrics and health are served on
    HTTP_PORT (9464).
    """
    selected = [p.value for p in process] if process else None
    _serve(selected, rate=rate, count=count, nats_url=nats_url, clickhouse_url=clickhouse_url)


def produce(
    rate: Rate = None,
    count: Count = None,
    nats_url: NatsUrl = None,
) -> None:
    """Run the producer service: synthetic envelopes at a steady rate until Ctrl-C.

    For a one-off batch, or envelopes from a file, use `ponix publish`.
    """
    _serve([Process.PRODUCER.value], rate=rate, count=count, nats_url=nats_url)


def ingest(
    nats_url: NatsUrl = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Run the ingester service: JetStream to ClickHouse, one outcome per envelope.

    An envelope is acked once its row is stored, and dead-lettered only for a fault of its own.
    Whatever ClickHouse does wrong is held and retried in place (never dead-lettered);
    NATS_MAX_DELIVER counts only deliveries that failed for the message's own sake.
    Several ingesters may run at once: they share the durable consumer.
    """
    _serve([Process.INGESTER.value], nats_url=nats_url, clickhouse_url=clickhouse_url)


def _serve(
    processes: list[str] | None,
    *,
    rate: float | None = None,
    count: int | None = None,
    nats_url: str | None = None,
    clickhouse_url: str | None = None,
) -> None:
    from ponix_all_in_one import ProcessName, run_all_in_one
    from ponix_runner import run_main

    use_targets(nats_url=nats_url, clickhouse_url=clickhouse_url)
    choose_http_port()
    if rate is not None:
        os.environ["PRODUCER_RATE"] = str(rate)
    if count is not None:
        os.environ["PRODUCER_COUNT"] = str(count)
    # None lets the all-in-one read PONIX_PROCESSES itself.
    names: list[ProcessName] | None = None
    if processes:
        names = ["producer" if p == Process.PRODUCER else "ingester" for p in processes]
    # A taken HTTP_PORT, like any user error, is one line from run_main (telemetry.port_in_use).
    raise typer.Exit(run_main(lambda: run_all_in_one(names)))


def choose_http_port(*, quiet: bool = False) -> int:
    """HTTP_PORT when set; else the usual 9464, or a free port when 9464 is taken (a `ponix
    dev` running next to a second ingester, say), said on stderr."""
    from ponix_devstack import free_port, port_is_free

    configured = os.environ.get("HTTP_PORT", "").strip()
    if configured:
        return int(configured) if configured.isdigit() else METRICS_PORT
    port = METRICS_PORT
    if not port_is_free(METRICS_PORT):
        port = free_port()
        if not quiet:
            console.warn(f"HTTP_PORT {METRICS_PORT} is taken; /metrics and /readyz on :{port}")
    os.environ["HTTP_PORT"] = str(port)
    return port
