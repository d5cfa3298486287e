"""``ponix dlq list`` and ``ponix dlq redrive``: the dead-letter stream, read and replayed.

A dead letter is the original bytes of an envelope the ingester could never store (undecodable,
invalid, too large, or out of deliveries), with why, its error code and where it came from.
Redrive republishes it to its original subject and only then deletes it from the DLQ; fix the
cause first (a config limit, the producer), or it comes straight back.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import typer

from ponix_cli import console, render
from ponix_cli.options import Json, NatsUrl
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_config import NatsSettings
    from ponix_nats import DeadLetter, Redriven

_PAGE: Final = 1000
PREVIEW_CHARS: Final = 100
REASON_CHARS: Final = 100

LIST_EPILOG = """
**Examples**

```
ponix dlq list
ponix dlq list --limit 500 --json > dead-letters.json
ponix dlq list --from 120          # start at DLQ sequence 120
```
"""

REDRIVE_EPILOG = """
**Examples**

```
ponix dlq redrive --seq 3                 # one dead letter, by its DLQ sequence
ponix dlq redrive --seq 3 --seq 4
ponix dlq redrive --all
```

A typical story: envelopes larger than INGESTER_MAX_ENVELOPE_BYTES were dead-lettered as
`envelope.too_large`. Raise the limit, restart the ingester, then `ponix dlq redrive --all`.

A dead letter whose Nats-Msg-Id is still inside the stream's duplicate window
(NATS_DUPLICATE_WINDOW, 120 s) is *deferred*: JetStream would drop the republish as the very
message that failed. It stays in the DLQ; redrive it again once the window has passed.
"""

app = typer.Typer(
    name="dlq",
    help="Inspect and redrive the dead-letter stream (envelopes that could not be stored).",
    rich_markup_mode="markdown",
    no_args_is_help=True,
)


@dataclass(frozen=True, slots=True)
class LetterView:
    """One dead letter as ``dlq list`` shows it."""

    seq: int
    code: str
    reason: str
    source: str
    deliveries: int
    failed_at: str
    subject: str
    preview: str

    @classmethod
    def of(cls, letter: DeadLetter) -> LetterView:
        failed = letter.failed_at.strftime("%Y-%m-%d %H:%M:%S") if letter.failed_at else "-"
        return cls(
            seq=letter.dlq_seq,
            code=letter.code or "-",
            reason=letter.reason or "-",
            source=f"{letter.stream}:{letter.sequence}" if letter.stream else "-",
            deliveries=letter.deliveries,
            failed_at=failed,
            subject=letter.subject or "-",
            preview=payload_preview(letter.payload),
        )


@app.command("list", epilog=LIST_EPILOG)
def list_letters(
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="At most this many, oldest first.")
    ] = 50,
    start: Annotated[
        int, typer.Option("--from", min=1, help="Start at this DLQ sequence.", show_default=False)
    ] = 1,
    as_json: Json = False,
    nats_url: NatsUrl = None,
) -> None:
    """List dead letters: DLQ sequence, error code, reason, source stream sequence,
    deliveries, failure time and a payload preview."""
    from ponix_config import NatsSettings, load_settings

    use_targets(nats_url=nats_url)
    console.quiet_logging()
    settings = load_settings(NatsSettings)
    total, letters = console.run_async(lambda: _list(settings, limit, start))
    if as_json:
        console.say(json.dumps([letter_json(letter) for letter in letters], indent=2))
        return
    if total is None:
        console.say(f"no dead letters: {settings.dlq_stream} does not exist yet")
        return
    if not letters:
        console.say(f"no dead letters in {settings.dlq_stream}")
        return
    for letter in letters:
        console.say(describe(letter, main_stream=settings.stream))
    console.say(
        f"{len(letters)} of {render.count(total)} dead letters in {settings.dlq_stream}; "
        "`ponix dlq redrive --seq N` replays one"
    )


def describe(letter: DeadLetter, *, main_stream: str) -> str:
    """One dead letter as a short block that reads well at any terminal width::

    #1  envelope.invalid  stream seq 3943, 1 delivery, failed 2026-11-23 10:50:04 UTC
        reason   occurred_at is missing
        payload  {"end_device_id":"sensor-7","data":{"temperature":21.5}}
    """
    view = LetterView.of(letter)
    source = (
        f"stream seq {letter.sequence}" if letter.stream == main_stream else f"from {view.source}"
    )
    deliveries = "1 delivery" if letter.deliveries == 1 else f"{letter.deliveries} deliveries"
    failed = f"failed {view.failed_at} UTC" if letter.failed_at else "failed at an unknown time"
    return "\n".join(
        [
            f"#{view.seq}  {view.code}  {source}, {deliveries}, {failed}",
            f"    reason   {render.shorten(view.reason, REASON_CHARS)}",
            f"    subject  {view.subject}",
            f"    payload  {view.preview}",
        ]
    )


@app.command("redrive", epilog=REDRIVE_EPILOG)
def redrive_letters(
    seq: Annotated[
        list[int] | None,
        typer.Option("--seq", min=1, help="The DLQ sequence of a dead letter; repeatable."),
    ] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
    as_json: Json = False,
    nats_url: NatsUrl = None,
) -> None:
    """Republish dead letters to their original subject, then delete them from the DLQ."""
    from ponix_config import NatsSettings, load_settings

    if bool(seq) == redrive_all:
        raise typer.BadParameter("give --all or one or more --seq N")
    use_targets(nats_url=nats_url)
    console.quiet_logging()
    settings = load_settings(NatsSettings)
    which: Literal["all"] | list[int] = "all" if redrive_all else list(seq or [])
    done = console.run_async(lambda: _redrive(settings, which))
    if as_json:
        console.say(
            json.dumps(
                [{"seq": r.dlq_seq, "status": r.status, "stream_seq": r.stream_seq} for r in done]
            )
        )
        return
    for outcome in done:
        console.say(redrive_line(outcome, settings))
    republished = sum(1 for r in done if r.status == "republished")
    console.say(f"{republished} republished, {len(done) - republished} deferred")


def redrive_line(outcome: Redriven, settings: NatsSettings) -> str:
    if outcome.status == "republished":
        return (
            f"seq {outcome.dlq_seq}: republished to {settings.stream} as seq {outcome.stream_seq}"
        )
    return (
        f"seq {outcome.dlq_seq}: deferred: its Nats-Msg-Id is still inside {settings.stream}'s "
        f"duplicate window ({render.duration(settings.duplicate_window)}); it stays in the "
        "DLQ, redrive it again after the window"
    )


async def _list(
    settings: NatsSettings, limit: int, start: int
) -> tuple[int | None, list[DeadLetter]]:
    from ponix_cli.jetstream import connection, warn_drift
    from ponix_nats import check_jetstream, list_dead_letters, stream_info

    async with connection(settings, name="ponix-dlq") as nc:
        js = nc.jetstream()
        info = await stream_info(js, settings, settings.dlq_stream)
        if info is None:
            return None, []
        warn_drift(await check_jetstream(js, settings), missing=False)
        letters = await list_dead_letters(js, settings, limit, start_seq=start)
        return int(info.state.messages or 0), letters


async def _redrive(settings: NatsSettings, which: Literal["all"] | list[int]) -> list[Redriven]:
    from ponix_cli.jetstream import connection, warn_drift
    from ponix_nats import (
        DeadLetterNotFoundError,
        check_jetstream,
        list_dead_letters,
        redrive,
        stream_info,
    )

    async with connection(settings, name="ponix-dlq") as nc:
        js = nc.jetstream()
        info = await stream_info(js, settings, settings.dlq_stream)
        if info is None:
            if which == "all":
                return []
            raise DeadLetterNotFoundError(settings.dlq_stream, which[0])
        warn_drift(await check_jetstream(js, settings), missing=False)
        if which == "all":
            # Only the letters there now: a redriven envelope that fails again is dead-lettered
            # anew while we go, and must not be picked up by this same run.
            last = int(info.state.last_seq or 0)
            which, cursor = [], 1
            while page := await list_dead_letters(js, settings, _PAGE, start_seq=cursor):
                which += [letter.dlq_seq for letter in page if letter.dlq_seq <= last]
                if page[-1].dlq_seq >= last:
                    break
                cursor = page[-1].dlq_seq + 1
        done: list[Redriven] = []
        for one in which:
            done += await redrive(js, settings, one)
        return done


def payload_preview(payload: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The envelope as compact proto JSON when it decodes, else its first bytes."""
    from google.protobuf import json_format

    from ponix_proto import pb

    try:
        envelope = pb.ProcessedEnvelope.FromString(payload)
        text = json.dumps(
            json_format.MessageToDict(envelope, preserving_proto_field_name=True),
            separators=(",", ":"),
            ensure_ascii=False,
        )
    except (pb.DecodeError, ValueError, RecursionError):
        text = repr(payload[: limit * 2])
    size = f" ({render.size(len(payload))})" if len(payload) > 1024 else ""
    return render.shorten(text, limit) + size


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    """A dead letter for ``--json``: every field, the payload as base64 and as a preview."""
    return {
        "seq": letter.dlq_seq,
        "code": letter.code,
        "reason": letter.reason,
        "stream": letter.stream,
        "stream_seq": letter.sequence,
        "deliveries": letter.deliveries,
        "failed_at": letter.failed_at.isoformat() if letter.failed_at else None,
        "subject": letter.subject,
        "msg_id": letter.msg_id,
        "headers": dict(letter.headers),
        "payload_bytes": len(letter.payload),
        "payload_base64": base64.b64encode(letter.payload).decode("ascii"),
        "preview": payload_preview(letter.payload),
    }
