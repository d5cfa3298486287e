"""``ponix stream peek``: decode and show envelopes from the main stream, as ``nats stream view``
or ``kcat -C`` would, without disturbing it.

Reading goes through an ordered consumer of its own (:mod:`ponix_cli.stream_reader`): the
durable consumer the ingesters share is untouched, nothing is acked, and the stream's
configuration is only read.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from ponix_cli import console, render
from ponix_cli.errors import CliError
from ponix_cli.options import FromSeq, Json, NatsUrl, Since, parse_since
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from ponix_cli.stream_reader import StartAt
    from ponix_config import NatsSettings

DATA_CHARS: Final = 200

app = typer.Typer(
    name="stream",
    help="Look into the main stream (the envelopes waiting for, or already written by, the "
    "ingester).",
    rich_markup_mode="markdown",
    no_args_is_help=True,
)

PEEK_EPILOG = """
**Examples**

```
ponix stream peek                          # the first 10 envelopes the stream retains
ponix stream peek -n 3 --from-seq 1200     # three, from stream sequence 1200
ponix stream peek --since 5m -n 100        # stored in the last five minutes
ponix stream peek 'processed_envelopes.acme' -n 1
ponix stream peek --json -n 1000 | jq -r .envelope.end_device_id | sort | uniq -c
```

SUBJECT is a NATS subject filter within the stream's subjects (`*` one token, `>` the rest).
An envelope that does not decode is shown with its first bytes and why. `--json` prints one
object per line: `seq`, `subject`, `stored_at`, `headers`, `size`, `envelope` (proto JSON, or
null) and, for an undecodable one, `error` and `payload_base64`.
"""


@dataclass(frozen=True, slots=True)
class Peeked:
    """One stream message, decoded when it is an envelope."""

    seq: int
    subject: str
    stored_at: datetime | None
    headers: dict[str, str]
    size: int
    envelope: dict[str, Any] | None
    error: str | None
    payload: bytes

    @classmethod
    def of(cls, msg: Msg, seq: int) -> Peeked:
        from google.protobuf import json_format

        from ponix_proto import pb

        envelope: dict[str, Any] | None = None
        error = None
        try:
            decoded = pb.ProcessedEnvelope.FromString(msg.data)
            envelope = json_format.MessageToDict(decoded, preserving_proto_field_name=True)
        except (pb.DecodeError, ValueError, RecursionError) as exc:
            error = " ".join(str(exc).split()) or type(exc).__name__
        stamp = msg.metadata.timestamp
        return cls(
            seq=seq,
            subject=msg.subject,
            stored_at=stamp.astimezone(UTC) if stamp else None,
            headers=dict(msg.headers or {}),
            size=len(msg.data),
            envelope=envelope,
            error=error,
            payload=msg.data,
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "seq": self.seq,
            "subject": self.subject,
            "stored_at": self.stored_at.isoformat() if self.stored_at else None,
            "headers": self.headers,
            "size": self.size,
            "envelope": self.envelope,
        }
        if self.error is not None:
            body["error"] = self.error
            body["payload_base64"] = base64.b64encode(self.payload).decode("ascii")
        return body


def describe(item: Peeked) -> str:
    """One message as a short block::

    #1204  processed_envelopes.acme  stored 2026-12-06 10:00:00.123 UTC  212 B
        id        0193a0c2-...   org acme   device sensor-7
        occurred  2026-12-06T10:00:00.100Z   processed 2026-12-06T10:00:00.101Z
        data      {"temperature":21.5}
        headers   Nats-Msg-Id=0193a0c2-...
    """
    stored = (
        item.stored_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if item.stored_at else "-"
    )
    lines = [f"#{item.seq}  {item.subject}  stored {stored}  {render.size(item.size)}"]
    if item.envelope is None:
        lines.append(f"    undecodable  {item.error}")
        lines.append(
            f"    payload      {render.shorten(repr(item.payload[:DATA_CHARS]), DATA_CHARS)}"
        )
    else:
        env = item.envelope
        lines.append(
            f"    id        {env.get('id') or '-'}   org {env.get('organization_id') or '-'}"
            f"   device {env.get('end_device_id') or '-'}"
        )
        lines.append(
            f"    occurred  {env.get('occurred_at') or '-'}   "
            f"processed {env.get('processed_at') or '-'}"
        )
        data = json.dumps(env.get("data", {}), ensure_ascii=False, separators=(",", ":"))
        lines.append(f"    data      {render.shorten(data, DATA_CHARS)}")
    if item.headers:
        pairs = "  ".join(f"{k}={v}" for k, v in item.headers.items())
        lines.append(f"    headers   {render.shorten(pairs, DATA_CHARS)}")
    return "\n".join(lines)


@app.command("peek", epilog=PEEK_EPILOG)
def peek(
    subject: Annotated[
        str | None,
        typer.Argument(
            help="Subject filter. Default: all of the stream's subjects (NATS_SUBJECT_PREFIX.>).",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", min=1, help="At most this many envelopes.")
    ] = 10,
    from_seq: FromSeq = None,
    since: Since = None,
    as_json: Json = False,
    nats_url: NatsUrl = None,
) -> None:
    """Decode and show envelopes from the main stream, oldest first.

    Reads through a consumer of its own: the ingesters' durable consumer is not
    touched and nothing is acked.
    """
    from ponix_cli.stream_reader import StartAt
    from ponix_config import NatsSettings, load_settings

    if since is not None and from_seq is not None:
        raise typer.BadParameter("give --since or --from-seq, not both")
    start = StartAt(seq=from_seq, time=parse_since(since) if since is not None else None)
    use_targets(nats_url=nats_url)
    console.quiet_logging()
    settings = load_settings(NatsSettings)
    chosen = subject or settings.subjects[0]
    shown = 0

    def show(item: Peeked) -> None:
        nonlocal shown
        shown += 1
        console.say(render.json_line(item.to_json()) if as_json else describe(item))

    console.run_async(lambda: _peek(settings, chosen, start, count, show))
    if not shown and not as_json:
        console.warn(f"no envelopes in {settings.stream} on {chosen} {start.describe()}")


async def _peek(
    settings: NatsSettings,
    subject: str,
    start: StartAt,
    count: int,
    show: Callable[[Peeked], None],
) -> None:
    import nats.js.errors

    from ponix_cli.jetstream import connection, stream_info
    from ponix_cli.stream_reader import read_messages

    async with connection(settings, name="ponix-peek") as nc:
        info = await stream_info(nc, settings, settings.stream)
        if info is None:
            raise CliError(
                "nats.stream_missing",
                f"stream {settings.stream} does not exist: nothing was published yet",
            )
        if not info.state.messages:
            return
        taken = 0

        async def handle(msg: Msg, seq: int) -> bool:
            nonlocal taken
            taken += 1
            show(Peeked.of(msg, seq))
            return taken < count

        try:
            await read_messages(
                nc,
                stream=settings.stream,
                subject=subject,
                start=start,
                last_seq=int(info.state.last_seq or 0),
                handle=handle,
            )
        except nats.js.errors.BadRequestError as exc:
            raise CliError(
                "nats.bad_subject",
                f"{subject}: {exc.description or 'not a subject filter of the stream'} "
                f"(the stream's subjects: {', '.join(info.config.subjects or [])})",
            ) from None
