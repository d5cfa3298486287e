"""``ponix bench``: the command (the ``ponix`` CLI mounts :data:`app` as ``bench``)."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import uvloop

from ponix_bench.contenders import DEFAULT_CONTENDERS, KNOWN, parse_contenders
from ponix_bench.harness import Options, run_bench
from ponix_bench.report import render
from ponix_devstack import LocalStack

app = typer.Typer(
    help="Throughput, CPU, latency and memory of the ingester against the raw pull protocol.",
    no_args_is_help=False,
    add_completion=False,
)


_STARTED = time.monotonic()


def _progress(line: str) -> None:
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {line}", file=sys.stderr, flush=True)


def _env_items(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not NAME=value", param_hint="--ingester-env")
        env[key] = value
    return env


@app.command()
def bench(
    count: Annotated[
        int, typer.Option(min=100, help="Envelopes pre-published and read by every contender.")
    ] = 100_000,
    batch: Annotated[
        int | None,
        typer.Option(min=1, help="Fetch size for every contender (default: 1000, the ingester's)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
    ] = False,
    contenders: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated, of: {', '.join(KNOWN)}. Ratios are to raw (one process) "
            "or raw_x2 (two: ponix_x2, ..._x2), so keep those in. A ponix one may "
            "carry settings, e.g. 'ponix[NATS_BATCH_SIZE=500+NATS_FETCH_EXPIRES=0.5]'."
        ),
    ] = ",".join(DEFAULT_CONTENDERS),
    runs: Annotated[
        int,
        typer.Option(
            min=1, help="Runs, each contender once per run in a rotated order; medians shown."
        ),
    ] = 5,
    latency: Annotated[
        bool, typer.Option("--latency/--no-latency", help="Measure publish -> queryable latency.")
    ] = True,
    latency_seconds: Annotated[
        float, typer.Option(min=1, help="Seconds of publishing in the latency phase.")
    ] = 20.0,
    latency_storage: Annotated[
        str,
        typer.Option(
            help="Storage of the latency phase's stream: memory (default; a sync_interval: "
            "always file store on a small disk cannot take half the ingester's rate) or file."
        ),
    ] = "memory",
    soak: Annotated[
        float, typer.Option(min=0, help="Seconds of steady load while sampling RSS (0: skip).")
    ] = 0.0,
    ingester_env: Annotated[
        list[str] | None,
        typer.Option(help="NAME=value for every ingester the bench starts; repeatable."),
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="Record py-spy profiles (raw collapsed stacks) of the ponix and raw contenders "
            "here, one file per contender and run; `python -m ponix_bench.profile DIR` sums them."
        ),
    ] = None,
    save: Annotated[
        Path | None,
        typer.Option(
            help="Also write the report as JSON to this file (compare a run with the last)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the servers' stores and the contenders' logs here "
            "(default: a temporary directory, removed afterwards)."
        ),
    ] = None,
) -> None:
    """Run the benchmark on local nats-server and ClickHouse processes and print the figures.

    Exits 1 when a contender that writes did not store exactly COUNT distinct rows in a run.
    """
    if latency_storage not in ("file", "memory"):
        raise typer.BadParameter("file or memory", param_hint="--latency-storage")
    try:
        specs = parse_contenders(contenders)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--contenders") from None
    options = Options(
        count=count,
        batch=batch,
        contenders=specs,
        runs=runs,
        latency=latency,
        latency_seconds=latency_seconds,
        latency_storage="file" if latency_storage == "file" else "memory",
        soak_seconds=soak,
        ingester_env=_env_items(ingester_env or []),
        profile_dir=profile.resolve() if profile is not None else None,
    )
    keep = data_dir is not None
    root = (
        data_dir.resolve()
        if data_dir is not None
        else Path(tempfile.mkdtemp(prefix="ponix-bench-"))
    )
    root.mkdir(parents=True, exist_ok=True)
    workdir = root / "work"
    workdir.mkdir(exist_ok=True)
    failed = True
    _progress(f"starting nats-server and ClickHouse in {root}")
    try:
        with LocalStack(root / "stack") as stack:
            report = uvloop.run(run_bench(stack, workdir, options, _progress))
        failed = False
    finally:
        if failed:
            _progress(f"bench failed; logs kept in {workdir}")
        elif not keep:
            shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(report.to_json(), indent=2)
    if save is not None:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text + "\n", encoding="utf-8")
        _progress(f"report saved to {save}")
    if json_output:
        print(text)
    else:
        print(render(report))
    if not report.rows_ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
