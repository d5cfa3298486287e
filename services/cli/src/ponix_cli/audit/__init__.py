"""``ponix audit``: reconcile what the stream retains with what the table holds.

The stream is read once, from ``--from-seq``, ``--since`` or its first message up to the last
sequence it held when the audit began, through an ordered consumer (:mod:`ponix_cli.stream_reader`).
Each message is named with the ingester's own rule (:mod:`.naming`), gathered into chunks
(:mod:`.scan`), and each chunk is checked against ClickHouse (:mod:`.table`) while the next is
read, so memory stays flat on any stream length. :mod:`.report` holds what was found.

Exit codes: 0 when every envelope read is stored exactly once, 3 when some are missing or
duplicated (findings), 1 when the audit could not run (an error).
"""

from __future__ import annotations

from typing import Final

import typer

from ponix_cli import console
from ponix_cli.options import ClickHouseUrl, FromSeq, Json, NatsUrl, Since, parse_since
from ponix_cli.targets import use_targets

FINDINGS: Final = 3

EPILOG = """
**Examples**

```
ponix audit                          # everything the stream retains
ponix audit --since 1h               # messages stored in the last hour
ponix audit --from-seq 1200000
ponix audit --json | jq '.missing_total'
```

**Exit codes.** 0: every envelope read is stored exactly once. 3: some are missing or
duplicated (the report lists the first of each). 1: the audit could not run (a server
unreachable, the stream or table missing).

Uses the same INGESTER_MAX_ENVELOPE_BYTES and INGESTER_TRUST_PAYLOAD_ORG as the ingester (set
them alike) to tell poison from envelopes that should be stored. Messages the stream no longer
retains (NATS_MAX_AGE, NATS_MAX_BYTES) are not audited. The stream is read in chunks of 20,000
messages, each checked against the table while the next is read, so memory stays flat however
much is audited; an envelope published twice far apart (outside the duplicate window) counts
once per chunk it falls in.
"""


def audit(
    since: Since = None,
    from_seq: FromSeq = None,
    as_json: Json = False,
    nats_url: NatsUrl = None,
    clickhouse_url: ClickHouseUrl = None,
) -> None:
    """Check that every envelope the stream retains (or a range of it) is stored exactly once.

    Reports envelopes missing from ClickHouse (acked by the consumer but not in the
    table), ids duplicated in the exact read (FINAL), and, separately and without
    failing, dead-lettered poison and envelopes the ingester has not processed yet.
    Exits 3 when anything is missing or duplicated, 1 on an error.
    """
    from ponix_cli.audit.report import render_report
    from ponix_cli.audit.run import run_audit
    from ponix_cli.stream_reader import StartAt
    from ponix_config import ClickHouseSettings, NatsSettings, load_settings

    if since is not None and from_seq is not None:
        raise typer.BadParameter("give --since or --from-seq, not both")
    start = StartAt(seq=from_seq, time=parse_since(since) if since is not None else None)
    use_targets(nats_url=nats_url, clickhouse_url=clickhouse_url)
    console.quiet_logging()
    nats = load_settings(NatsSettings)
    clickhouse = load_settings(ClickHouseSettings)
    report = console.run_async(lambda: run_audit(nats, clickhouse, start))
    console.say(report.to_json() if as_json else render_report(report))
    if not report.ok:
        raise typer.Exit(FINDINGS)
