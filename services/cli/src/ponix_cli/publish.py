"""``ponix publish``: N synthetic envelopes, or JSON lines from a file or stdin, pipelined.

Every envelope goes out through ``EnvelopeProducer.send`` (PubAcks are awaited in bulk, up to
``--max-in-flight`` at a time), with its id as ``Nats-Msg-Id``: publishing the same envelope
again inside the stream's duplicate window is counted as a duplicate, not stored twice. A JSON
line without an id gets one derived from its content (``ponix_producer.content_envelope_id``), so
publishing the same file again is idempotent too.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Final

import typer

from ponix_cli import console, render
from ponix_cli.errors import CliError
from ponix_cli.options import Json, NatsUrl
from ponix_cli.progress import Ticker
from ponix_cli.targets import use_targets

if TYPE_CHECKING:
    from ponix_config import NatsSettings
    from ponix_nats import EnvelopeProducer
    from ponix_producer import BadLine, OutgoingEnvelope

STDIN: Final = "-"
# Lines are read from a regular file in chunks of about this many bytes.
_CHUNK_BYTES: Final = 1 << 16
# The progress bar is redrawn every this many envelopes, not for each one.
_PROGRESS_EVERY: Final = 256
# After this many bad-line warnings the rest are only counted.
_MAX_WARNINGS: Final = 50

EPILOG = """
**Examples**

```
ponix publish --count 5000
ponix publish --file envelopes.jsonl
ponix publish --file envelopes.jsonl --strict      # stop at the first bad line
producer-script | ponix publish --file -
```

**One envelope per line** (proto JSON names; `id` optional, derived from the line's content
when absent):

```
{"id": "0190c5e8-...", "organization_id": "acme", "end_device_id": "d-1",
 "occurred_at": "2026-11-23T10:00:00Z", "data": {"temperature": 21.5}}
```
"""


@dataclass(frozen=True, slots=True)
class PublishSummary:
    """What one ``ponix publish`` did."""

    published: int
    """Envelopes JetStream stored (new ones; duplicates not included)."""
    duplicates: int
    """Envelopes JetStream dropped as repeats of a Nats-Msg-Id in its duplicate window."""
    bad_lines: int
    seconds: float

    @property
    def acknowledged(self) -> int:
        return self.published + self.duplicates

    def text(self) -> str:
        return (
            f"published {render.count(self.published)} envelopes in "
            f"{render.duration(self.seconds)} ({render.rate(self.acknowledged, self.seconds)}); "
            f"duplicates: {render.count(self.duplicates)}, "
            f"bad lines: {render.count(self.bad_lines)}"
        )


def publish(
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            help="Publish this many synthetic envelopes.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="Publish the envelopes of a JSON-lines file; `-` reads stdin.",
            show_default=False,
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Stop at the first bad line (exit 1) instead of skipping it."
        ),
    ] = False,
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", min=1, help="Publishes awaiting their PubAck at once.")
    ] = 1024,
    as_json: Json = False,
    nats_url: NatsUrl = None,
) -> None:
    """Publish envelopes to the stream: synthetic ones, or JSON lines from a file or stdin.

    A bad line is reported on stderr with its line number and skipped (`--strict` stops
    there, exit 1; the envelopes before it are already published). The summary says how
    many were published, how many JetStream dropped as duplicates, and how many lines were
    bad. Never creates or changes the stream: it must exist (the ingester or `ponix provision`
    creates it), and settings that differ from it are reported in one warning line.

    A line without `id` gets one derived from its content (a UUIDv7 at its `occurred_at`),
    also sent as Nats-Msg-Id, so publishing the same file again stores each envelope once;
    identical lines are one envelope.
    """
    from ponix_config import NatsSettings, load_settings

    if (count is None) == (file is None):
        raise typer.BadParameter("give exactly one of --count N or --file PATH")
    use_targets(nats_url=nats_url)
    console.quiet_logging()
    settings = load_settings(NatsSettings)
    handle = _open(file) if file is not None else None
    try:
        summary = console.run_async(
            lambda: _publish(
                settings, count=count, handle=handle, strict=strict, room=max_in_flight
            )
        )
    except UnicodeDecodeError as exc:
        where = "stdin" if file == STDIN else file
        raise CliError(
            "cli.file_unreadable", f"{where}: not UTF-8 text (byte {exc.start} of a read block)"
        ) from None
    finally:
        if handle is not None and handle is not sys.stdin:
            handle.close()
    console.say(json.dumps(asdict(summary)) if as_json else summary.text())


def _open(file: str) -> IO[str]:
    if file == STDIN:
        return sys.stdin
    path = Path(file)
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise CliError("cli.file_unreadable", f"{path}: {exc.strerror or exc}") from None


async def _publish(
    settings: NatsSettings,
    *,
    count: int | None,
    handle: IO[str] | None,
    strict: bool,
    room: int,
) -> PublishSummary:
    from ponix_cli.jetstream import warn_drift
    from ponix_nats import EnvelopeProducer, check_jetstream, connect

    nc = await connect(settings, name="ponix-publish")
    try:
        warn_drift((await check_jetstream(nc.jetstream(), settings)).require_stream())
        producer = EnvelopeProducer(nc, settings, max_in_flight=room)
        started = time.monotonic()
        try:
            if handle is None:
                await _synthetic(producer, settings, count or 0)
                bad = 0
            else:
                bad = await _lines(producer, settings, handle, strict=strict)
            await producer.flush()
        finally:
            await producer.close()
        elapsed = time.monotonic() - started
        return PublishSummary(
            published=producer.published - producer.duplicates,
            duplicates=producer.duplicates,
            bad_lines=bad,
            seconds=elapsed,
        )
    finally:
        await nc.drain()


async def _synthetic(producer: EnvelopeProducer, settings: NatsSettings, count: int) -> None:
    from ponix_producer import SyntheticEnvelopes

    fleet = SyntheticEnvelopes()
    with Ticker(count, "publishing") as ticker:
        for sent in range(1, count + 1):
            await _send(producer, settings, fleet.next())
            if sent % _PROGRESS_EVERY == 0:
                ticker.update(sent)


async def _lines(
    producer: EnvelopeProducer, settings: NatsSettings, handle: IO[str], *, strict: bool
) -> int:
    from ponix_producer import BadLine, envelope_from_json

    total = _file_size(handle)
    bad = 0
    read = 0
    with Ticker(total, "publishing") as ticker:
        async for number, line in _numbered_lines(handle):
            read += len(line)
            if not line.strip():
                continue
            try:
                envelope = envelope_from_json(line.rstrip("\r\n"))
            except ValueError as exc:
                problem = BadLine(number, str(exc))
                if strict:
                    await producer.flush()
                    stored = producer.published - producer.duplicates
                    before = (
                        "1 envelope before it was"
                        if stored == 1
                        else f"{stored} envelopes before it were"
                    )
                    raise CliError(
                        problem.code, f"{problem}; stopped there (--strict), {before} published"
                    ) from None
                bad += 1
                _warn_bad_line(problem, bad, ticker)
                continue
            await _send(producer, settings, envelope)
            if number % _PROGRESS_EVERY == 0:
                ticker.update(read)
    return bad


def _warn_bad_line(problem: BadLine, seen: int, ticker: Ticker) -> None:
    if seen > _MAX_WARNINGS:
        return
    text = f"warning: {problem.code}: {problem} (skipped)"
    if seen == _MAX_WARNINGS:
        text += "; further bad lines are only counted"
    ticker.note(text)


async def _send(producer: EnvelopeProducer, settings: NatsSettings, env: OutgoingEnvelope) -> None:
    await producer.send(
        env.payload, msg_id=env.envelope_id, subject=settings.subject_for(env.organization_id)
    )


async def _numbered_lines(handle: IO[str]) -> AsyncIterator[tuple[int, str]]:
    """Lines numbered from 1. stdin is read in a worker thread, one line at a time, so a slow
    writer never stalls the event loop (and with it the PubAcks)."""
    number = 0
    if not handle.seekable():
        while line := await asyncio.to_thread(handle.readline):
            number += 1
            yield number, line
        return
    while chunk := handle.readlines(_CHUNK_BYTES):
        for line in chunk:
            number += 1
            yield number, line


def _file_size(handle: IO[str]) -> int | None:
    try:
        return Path(handle.name).stat().st_size if handle.seekable() else None
    except (OSError, TypeError, AttributeError):
        return None
