"""``ponix bench``: the benchmark from the ``bench/`` workspace member, loaded on demand.

``ponix_bench`` is imported only when ``ponix bench`` runs: it pulls in the whole pipeline,
which would slow every other verb (and ``ponix --help``) by a second or more. The ``bench``
command hands its arguments to ``ponix_bench.command.app``, so ``ponix bench --help`` is the
benchmark's own help. Without the member installed, it says how to install it.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

import typer

from ponix_cli.errors import CliError

MODULE: Final = "ponix_bench.command"
INSTALL_HINT: Final = "the benchmark is not installed: run `uv sync --all-packages`"

HELP = """
Run the throughput and latency benchmark (bench/, `ponix_bench`); `ponix bench --help` for
its options. Needs `uv sync --all-packages`.
"""


def register(app: typer.Typer) -> None:
    """Add ``bench`` to ``app`` without importing the benchmark."""
    app.command(
        "bench",
        help=HELP,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(bench)


def bench(ctx: typer.Context) -> None:
    bench_app = load_bench_app()
    command = typer.main.get_command(bench_app)
    parent = ctx.parent.info_name if ctx.parent is not None else "ponix"
    command.main(args=list(ctx.args), prog_name=f"{parent} bench", standalone_mode=True)


def load_bench_app() -> typer.Typer:
    """``ponix_bench.command.app``, or a one-line error saying how to install it."""
    try:
        module: Any = importlib.import_module(MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and MODULE.startswith(exc.name):
            raise CliError("cli.bench_missing", INSTALL_HINT) from None
        raise
    bench_app = getattr(module, "app", None)
    if not isinstance(bench_app, typer.Typer):
        raise CliError("cli.bench_missing", f"{MODULE}.app is not a typer.Typer; {INSTALL_HINT}")
    return bench_app
