"""The ``ponix`` command: every user-facing verb under one typer app.

Each verb's module imports the heavy libraries (nats-py, clickhouse-driver, the services) inside
the command, so ``ponix --help`` and each verb pay only for what they use.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Annotated

import typer

from ponix_cli import (
    audit,
    bench,
    dev,
    dlq,
    migrate,
    peek,
    provision,
    publish,
    query,
    services,
    status,
)
from ponix_cli.console import warn
from ponix_cli.errors import USER_ERROR, error_line
from ponix_cli.targets import hint_for

HELP = """
Ponix: envelopes from NATS JetStream into ClickHouse.

Start a local stack with `ponix dev` (or `make dev`); in another shell of the same directory
every other verb finds it through `.ponix/env`. Elsewhere, set `NATS_URL` and `CLICKHOUSE_URL`
(or pass `--nats-url` / `--clickhouse-url`).

Errors are one line, `error: <code>: <reason>`, with exit code 1 (2 for a wrong command line;
`ponix audit` exits 3 when it finds missing or duplicated envelopes).

Shell completion: `ponix --install-completion` (bash, zsh, fish, PowerShell), then open a new
shell; `ponix --show-completion` prints the script instead.
"""

EPILOG = """
**A first session**

```
ponix dev                      # shell 1: nats-server + ClickHouse + the pipeline
ponix publish --count 1000     # shell 2
ponix query "SELECT count() FROM ponix.processed_envelopes FINAL"
ponix status
ponix stream peek -n 3
ponix audit
```
"""

app = typer.Typer(
    name="ponix",
    help=HELP,
    epilog=EPILOG,
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ponix {metadata.version('ponix-cli')}")
        raise typer.Exit


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Ponix command line."""


app.command("dev", epilog=dev.EPILOG)(dev.dev)
app.command("run", epilog=services.RUN_EPILOG)(services.run)
app.command("produce", epilog=services.PRODUCE_EPILOG)(services.produce)
app.command("ingest", epilog=services.INGEST_EPILOG)(services.ingest)
app.command("publish", epilog=publish.EPILOG)(publish.publish)
app.command("query", epilog=query.EPILOG)(query.query)
app.command("status", epilog=status.EPILOG)(status.status)
app.command("migrate", epilog=migrate.EPILOG)(migrate.migrate)
app.command("provision", epilog=provision.EPILOG)(provision.provision)
app.add_typer(dlq.app, name="dlq")
app.command("audit", epilog=audit.EPILOG)(audit.audit)
app.add_typer(peek.app, name="stream")
bench.register(app)


def main(argv: Sequence[str] | None = None) -> None:
    """The ``ponix`` console script: user errors as one line and exit 1, never a traceback."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name="ponix")
    except Exception as exc:
        first = _first_user_error(exc)
        code = getattr(first, "code", None)
        line = error_line(first, hint_for(code) if isinstance(code, str) else None)
        if line is None:
            raise
        warn(line)
        raise SystemExit(USER_ERROR) from None


def _first_user_error(exc: BaseException) -> BaseException:
    """The error to report: ``exc``, or the first leaf of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc
