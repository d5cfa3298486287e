"""``ponix migrate``: apply, list or roll back the ClickHouse migrations (yoyo, in process), or
upgrade a Ponix RS table to ours (``--from-rs``)."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from ponix_cli import console, render
from ponix_cli.errors import CliError
from ponix_cli.options import ClickHouseUrl
from ponix_cli.progress import Ticker
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_clickhouse import MigrationReport, RsUpgradeReport
    from ponix_config import ClickHouseSettings

EPILOG = """
**Examples**

```
ponix migrate                      # apply what is pending (the ingester does it at start too)
ponix migrate --list
ponix migrate --rollback --yes     # DROPS the envelope table and every stored envelope
ponix migrate --from-rs            # upgrade a Ponix RS table (no id column) in place
```

**--from-rs** copies the RS table into one of ours, month by month, giving every row a
deterministic id (the same row always gets the same id; identical rows, which RS stored for
each redelivery, are all kept with ids of their own), checks the copy holds every row, then
swaps: the RS table stays as `<table>_rs` until you drop it. Stop Ponix RS first.
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
    from_rs: Annotated[
        bool,
        typer.Option(
            "--from-rs",
            help="Upgrade a Ponix RS table (no id column) to ours, keeping every row.",
        ),
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

    if sum((list_only, rollback, from_rs)) > 1:
        raise typer.BadParameter("--list, --rollback and --from-rs exclude each other")
    use_targets(clickhouse_url=clickhouse_url)
    console.quiet_logging()
    settings = load_settings(ClickHouseSettings)
    if from_rs:
        console.say(rs_summary(_upgrade_rs(settings)))
        return
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


def _upgrade_rs(settings: ClickHouseSettings) -> RsUpgradeReport:
    from ponix_clickhouse import upgrade_rs_table

    with contextlib.ExitStack() as stack:
        bar: list[Ticker] = []  # drawn once the copy knows its total

        def progress(copied: int, total: int) -> None:
            if not bar:
                bar.append(stack.enter_context(Ticker(total, "copying")))
            bar[0].update(copied)

        return upgrade_rs_table(settings, progress=progress)


def rs_summary(report: RsUpgradeReport) -> str:
    """What ``--from-rs`` did, in a few lines."""
    table = f"{report.database}.{report.table}"
    if not report.upgraded:
        return f"{table} already has an id column: nothing to upgrade"
    identical = ""
    if report.identical:
        identical = (
            f" ({render.count(report.identical)} identical to another row, each kept "
            "with its own id)"
        )
    lines = [
        f"upgraded {table} from Ponix RS: {render.count(report.rows)} rows{identical} "
        f"in {render.duration(report.seconds)}",
        f"the Ponix RS table is kept as {report.backup}: drop it once you are satisfied",
    ]
    lines += [f"applied {m}" for m in report.applied]
    return "\n".join(lines)


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
