"""``ponix provision``: create or update the stream, the DLQ stream and the durable consumer.

With the ingester (at its start), this is the only command that changes JetStream; the others
report a difference and leave it alone. Lowering replicas or shrinking a limit is refused unless
``--allow-shrink`` (or ``NATS_ALLOW_SHRINK=true``): it drops stored envelopes, refuses envelopes
that fitted before, or shortens the window in which a resend is recognised as a duplicate.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated

import typer

from ponix_cli import console
from ponix_cli.options import Json, NatsUrl
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_config import NatsSettings
    from ponix_nats import FieldChange

EPILOG = """
**Examples**

```
ponix provision                        # create what is missing, apply changed settings
ponix provision --dry-run              # only show what would change
NATS_REPLICAS=3 ponix provision        # a cluster's stream and DLQ stream, 3 replicas each
NATS_MAX_AGE=86400 ponix provision --allow-shrink   # keep one day instead of seven
```

The settings are the same `NATS_*` variables the ingester reads (stream, subjects, replicas,
storage, limits, consumer). Storage, retention, ack and deliver policies cannot be changed in
place: such a difference is an error naming the field.
"""


@dataclass(frozen=True, slots=True)
class ProvisionReport:
    """What one ``ponix provision`` did (or, with ``dry_run``, would do)."""

    stream: str
    dlq_stream: str
    consumer: str
    dry_run: bool
    created: list[str]
    """Of ``stream``, ``dlq_stream``, ``consumer``."""
    changes: list[Change]


@dataclass(frozen=True, slots=True)
class Change:
    what: str
    name: str
    field: str
    old: str
    new: str
    shrinks: bool

    @classmethod
    def of(cls, change: FieldChange) -> Change:
        return cls(change.what, change.name, change.field, change.old, change.new, change.shrinks)


def provision(
    allow_shrink: Annotated[
        bool,
        typer.Option(
            "--allow-shrink",
            help="Allow lowering replicas or shrinking max_age, max_bytes, max_msg_size or the "
            "duplicate window (default: NATS_ALLOW_SHRINK, false).",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be created or changed.")
    ] = False,
    as_json: Json = False,
    nats_url: NatsUrl = None,
) -> None:
    """Create or update the stream, the DLQ stream and the durable consumer from the NATS_*
    settings; print every field changed, with its old and new value.

    Refuses (exit 1, nothing changed) to lower replicas or shrink a limit unless
    `--allow-shrink` or NATS_ALLOW_SHRINK=true.
    """
    from ponix_config import NatsSettings, load_settings

    use_targets(nats_url=nats_url)
    console.quiet_logging()
    settings = load_settings(NatsSettings)
    report = console.run_async(
        lambda: _provision(settings, allow_shrink=allow_shrink or None, dry_run=dry_run)
    )
    if as_json:
        console.say(json.dumps(asdict(report)))
        return
    for line in report_lines(report, allowed=allow_shrink or settings.allow_shrink):
        console.say(line)


async def _provision(
    settings: NatsSettings, *, allow_shrink: bool | None, dry_run: bool
) -> ProvisionReport:
    from ponix_cli.jetstream import connection
    from ponix_nats import check_jetstream, ensure_jetstream

    async with connection(settings, name="ponix-provision") as nc:
        js = nc.jetstream()
        if dry_run:
            check = await check_jetstream(js, settings)
            created, changes = list(check.missing), check.drift
        else:
            done = await ensure_jetstream(js, settings, allow_shrink=allow_shrink)
            created, changes = list(done.created), done.changes
    return ProvisionReport(
        stream=settings.stream,
        dlq_stream=settings.dlq_stream,
        consumer=settings.consumer,
        dry_run=dry_run,
        created=created,
        changes=[Change.of(change) for change in changes],
    )


def report_lines(report: ProvisionReport, *, allowed: bool) -> list[str]:
    """One line per creation and per changed field, or one saying everything matches."""
    names = {"stream": report.stream, "dlq_stream": report.dlq_stream}
    names["consumer"] = f"{report.stream}/{report.consumer}"
    create, change = ("would create", "would change") if report.dry_run else ("created", "changed")
    lines = [f"{create} {what} {names[what]}" for what in report.created]
    for c in report.changes:
        line = f"{change} {c.what}.{c.field} of {c.name}: {c.old} -> {c.new}"
        if c.shrinks and report.dry_run and not allowed:
            line += " (a shrink: refused without --allow-shrink)"
        lines.append(line)
    if not lines:
        lines.append(
            f"up to date: stream {report.stream}, {report.dlq_stream} and consumer "
            f"{report.consumer} match the settings"
        )
    return lines
