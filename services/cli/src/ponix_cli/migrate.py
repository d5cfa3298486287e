"""``ponix migrate``: apply, list or roll back the ClickHouse migrations (yoyo, in process)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ponix_cli import console, render
from ponix_cli.errors import CliError
from ponix_cli.options import ClickHouseUrl
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_clickhouse import MigrationReport

EPILOG = """
**Examples**

```
ponix migrate                      # apply what is pending (the ingester does it at start too)
ponix migrate --list
ponix migrate --rollback --yes     # DROPS the envelope table and every stored envelope
```
"""


def migrate(
    list_only: Annotated[
        bool, typer.Option("--list", help="Only list the migrations and whether each is applied.")
    ] = False,
    rollback: Annotated[
        bool,
        typer.Option("--rollback", help="Roll back the newest applied migration."),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Do not ask before a rollback that drops data."),
    ] = False,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Apply the pending ClickHouse migrations (or list them, or roll back the newest).

    Migrations are safe to re-run and take a lock, so several ingesters starting at
    once apply each one exactly once. They choose their DDL by server version (18.16
    keeps second-precision DateTime; 20.1+ gets DateTime64(3)).
    """
    from ponix_clickhouse import migrate as run_migrations
    from ponix_config import ClickHouseSettings, load_settings

    if list_only and rollback:
        raise typer.BadParameter("--list and --rollback exclude each other")
    use_targets(clickhouse_url=clickhouse_url)
    console.quiet_logging()
    settings = load_settings(ClickHouseSettings)
    if rollback and not yes:
        _confirm_rollback(f"{settings.database}.{settings.table}")
    report = run_migrations(settings, rollback=rollback, list_only=list_only)
    if list_only:
        _print_list(report)
    else:
        console.say(summary(report))


def summary(report: MigrationReport) -> str:
    """One line per change, or the one line saying there was nothing to do."""
    server = f"ClickHouse {'.'.join(map(str, report.server_version))}, database {report.database}"
    if report.rolled_back:
        return "\n".join(f"rolled back {m} ({server})" for m in report.rolled_back)
    if report.applied:
        return "\n".join(f"applied {m} ({server})" for m in report.applied)
    if report.pending:
        return f"nothing rolled back; pending: {', '.join(report.pending)} ({server})"
    applied = len(report.already_applied)
    noun = "migration" if applied == 1 else "migrations"
    return f"up to date: {applied} {noun} applied ({server})"


def _print_list(report: MigrationReport) -> None:
    rows = [(m, "applied") for m in report.already_applied]
    rows += [(m, "pending") for m in report.pending]
    rows.sort()
    if console.stdout_is_tty():
        console.out().print(render.table(("migration", "status"), rows))
    else:
        for line in render.tsv_lines(rows):
            console.say(line)


def _confirm_rollback(table: str) -> None:
    question = f"Roll back the newest migration? It may drop {table} and every envelope in it"
    if not sys.stdin.isatty():
        raise CliError("cli.confirmation_required", f"{question}: pass --yes to confirm")
    if not typer.confirm(question + ".", default=False):
        raise typer.Exit(1)
