"""The dead-letter stream: copies of poison messages, read back and redriven by the CLI.

A dead letter is the ORIGINAL payload, the original non-``Nats-`` headers, and ``Ponix-Dlq-*``
headers saying why. Its ``Nats-Msg-Id`` is ``dlq:<stream>:<seq>``, so a copy retried after a
lost PubAck is dropped by the DLQ stream's duplicate window instead of stored twice.

Redrive order: republish to the original subject and wait for the PubAck, THEN delete the dead
letter by sequence. A crash in between leaves the dead letter in place; redriving it again
republishes under the same ``Nats-Msg-Id`` (the original one, else ``redrive:<stream>:<seq>``),
which JetStream drops within its duplicate window and the idempotent table absorbs after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe, display_url
from ponix_nats.errors import DeadLetterNotFoundError, NatsUnavailableError, PublishError, one_line
from ponix_nats.headers import (
    DLQ_HEADER_PREFIX,
    HEADER_CODE,
    HEADER_DELIVERIES,
    HEADER_FAILED_AT,
    HEADER_MSG_ID,
    HEADER_REASON,
    HEADER_REDRIVEN_FROM,
    HEADER_SEQUENCE,
    HEADER_STREAM,
    HEADER_SUBJECT,
    HEADER_TRUNCATED,
    NATS_HEADER_PREFIX,
    NATS_MSG_ID,
)

# Headers are one line each; a multi-kilobyte traceback belongs in the logs, not in NATS.
MAX_REASON_CHARS: Final = 1000
# STREAM.MSG.GET: "no message found".
_NO_MESSAGE: Final = 10037
# The header JetStreamContext.publish adds when a stream is named, and the frame around headers.
_EXPECTED_STREAM: Final = "Nats-Expected-Stream"
_HEADER_FRAME: Final = len(b"NATS/1.0\r\n") + len(b"\r\n")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of the DLQ stream, as the CLI lists it."""

    dlq_seq: int
    payload: bytes
    reason: str
    code: str
    stream: str
    sequence: int
    deliveries: int
    failed_at: datetime | None
    subject: str
    msg_id: str | None
    headers: Mapping[str, str]
    """The original message's own headers (``Nats-*`` and ``Ponix-Dlq-*`` left out)."""
    truncated_from: int | None = None
    """The original payload's size when the copy had to be trimmed to the server's
    ``max_payload`` (``payload`` then holds its beginning only)."""


@dataclass(frozen=True, slots=True)
class Redriven:
    """What redrive did with one dead letter: ``republished`` (then deleted from the DLQ), or
    ``deferred`` when its ``Nats-Msg-Id`` is still inside the main stream's duplicate window,
    where JetStream would drop the republish as the very message that failed."""

    dlq_seq: int
    status: Literal["republished", "deferred"]
    stream_seq: int


@dataclass(frozen=True, slots=True)
class _Letter:
    msg: Msg
    code: str
    reason: str


class DeadLetterPublisher:
    """Copies poison messages to ``settings.dlq_subject`` and waits for JetStream's PubAck.

    ``max_payload`` tells the server's limit (``Client.max_payload``, from its INFO), which
    counts headers and payload together. A copy that would exceed it is trimmed, with
    ``Ponix-Dlq-Truncated`` holding the original size: an oversized publish makes the server
    close the connection, losing every queued ack with it, and the poison would loop.
    """

    def __init__(
        self,
        js: JetStreamContext,
        settings: NatsSettings,
        *,
        max_payload: Callable[[], int] | None = None,
    ) -> None:
        self._js = js
        self._subject = settings.dlq_subject
        self._stream = settings.dlq_stream
        self._url = display_url(settings)
        self._max_payload = max_payload

    async def publish(self, msg: Msg, *, code: str, reason: str) -> None:
        """Copy ``msg`` with its reason; raises :class:`PublishError` when not stored."""
        headers = dead_letter_headers(msg, code=code, reason=reason, failed_at=datetime.now(UTC))
        payload = msg.data
        if self._max_payload is not None:
            payload = fit_dead_letter(payload, headers, self._stream, self._max_payload())
        try:
            await self._js.publish(self._subject, payload, headers=headers, stream=self._stream)
        except (nats.js.errors.APIError, *UNAVAILABLE_ERRORS) as exc:
            raise PublishError(self._subject, headers[NATS_MSG_ID], describe(exc)) from None

    async def publish_many(
        self, letters: Sequence[tuple[Msg, str, str]]
    ) -> list[PublishError | None]:
        """Copy each ``(msg, code, reason)`` concurrently; per letter, None when stored."""
        if not letters:
            return []
        results = await asyncio.gather(
            *(self.publish(m, code=c, reason=r) for m, c, r in letters), return_exceptions=True
        )
        out: list[PublishError | None] = []
        for result in results:
            if result is None or isinstance(result, PublishError):
                out.append(result)
            elif isinstance(result, Exception):
                out.append(PublishError(self._subject, None, describe(result)))
            else:
                raise result
        return out


def header_bytes(headers: Mapping[str, str]) -> int:
    """What ``headers`` take on the wire (``NATS/1.0`` framing, one ``Key: Value`` line each)."""
    return _HEADER_FRAME + sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())


def fit_dead_letter(
    payload: bytes, headers: dict[str, str], stream: str, max_payload: int
) -> bytes:
    """``payload``, trimmed (and ``headers`` marked) when the copy would exceed the server's
    ``max_payload`` with its headers (JetStream's expected-stream header included)."""
    sent = {**headers, _EXPECTED_STREAM: stream}
    if header_bytes(sent) + len(payload) <= max_payload:
        return payload
    headers[HEADER_TRUNCATED] = str(len(payload))
    sent[HEADER_TRUNCATED] = headers[HEADER_TRUNCATED]
    room = max(0, max_payload - header_bytes(sent))
    return payload[:room]


def dead_letter_headers(msg: Msg, *, code: str, reason: str, failed_at: datetime) -> dict[str, str]:
    """The headers of ``msg``'s dead-letter copy."""
    meta = msg.metadata
    original = msg.headers or {}
    headers = {k: v for k, v in original.items() if not _ours_or_nats(k)}
    msg_id = original.get(NATS_MSG_ID)
    if msg_id:
        headers[HEADER_MSG_ID] = msg_id
    headers.update(
        {
            HEADER_REASON: one_line(reason)[:MAX_REASON_CHARS] or "-",
            HEADER_CODE: one_line(code) or "-",
            HEADER_STREAM: meta.stream,
            HEADER_SEQUENCE: str(meta.sequence.stream),
            HEADER_DELIVERIES: str(meta.num_delivered),
            HEADER_FAILED_AT: failed_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            HEADER_SUBJECT: msg.subject,
            NATS_MSG_ID: f"dlq:{meta.stream}:{meta.sequence.stream}",
        }
    )
    return headers


async def list_dead_letters(
    js: JetStreamContext, settings: NatsSettings, limit: int = 100, *, start_seq: int = 1
) -> list[DeadLetter]:
    """Up to ``limit`` dead letters, oldest first, from DLQ sequence ``start_seq`` on."""
    letters: list[DeadLetter] = []
    seq = max(start_seq, 1)
    while len(letters) < limit:
        letter = await _next_letter(js, settings, seq)
        if letter is None:
            break
        letters.append(letter)
        seq = letter.dlq_seq + 1
    return letters


async def get_dead_letter(js: JetStreamContext, settings: NatsSettings, seq: int) -> DeadLetter:
    """The dead letter at DLQ sequence ``seq``; :class:`DeadLetterNotFoundError` if none."""
    letter = await _next_letter(js, settings, seq)
    if letter is None or letter.dlq_seq != seq:
        raise DeadLetterNotFoundError(settings.dlq_stream, seq)
    return letter


async def redrive(
    js: JetStreamContext,
    settings: NatsSettings,
    seq: int | Literal["all"],
    *,
    limit: int | None = None,
) -> list[Redriven]:
    """Republish dead letters to their original subject, then delete them from the DLQ.

    ``seq`` is one DLQ sequence, or ``"all"`` (at most ``limit`` when given).
    """
    if seq == "all":
        done: list[Redriven] = []
        cursor = 1
        while limit is None or len(done) < limit:
            letter = await _next_letter(js, settings, cursor)
            if letter is None:
                break
            done.append(await _redrive_one(js, settings, letter))
            cursor = letter.dlq_seq + 1
        return done
    return [await _redrive_one(js, settings, await get_dead_letter(js, settings, seq))]


async def _redrive_one(
    js: JetStreamContext, settings: NatsSettings, letter: DeadLetter
) -> Redriven:
    msg_id = letter.msg_id or f"redrive:{letter.stream}:{letter.sequence}"
    headers = dict(letter.headers)
    headers[NATS_MSG_ID] = msg_id
    headers[HEADER_REDRIVEN_FROM] = f"{settings.dlq_stream}:{letter.dlq_seq}"
    subject = letter.subject or settings.subject_for("_")
    try:
        ack = await js.publish(subject, letter.payload, headers=headers, stream=settings.stream)
    except (nats.js.errors.APIError, *UNAVAILABLE_ERRORS) as exc:
        raise PublishError(subject, msg_id, describe(exc)) from None
    if ack.duplicate and ack.seq == letter.sequence and ack.stream == letter.stream:
        return Redriven(letter.dlq_seq, "deferred", ack.seq)
    try:
        await js.delete_msg(settings.dlq_stream, letter.dlq_seq)
    except nats.js.errors.NotFoundError:
        pass  # already deleted by a concurrent redrive: the outcome is the same
    except UNAVAILABLE_ERRORS as exc:
        raise NatsUnavailableError(display_url(settings), describe(exc)) from None
    return Redriven(letter.dlq_seq, "republished", ack.seq)


async def _next_letter(js: JetStreamContext, settings: NatsSettings, seq: int) -> DeadLetter | None:
    try:
        raw = await js.get_msg(
            settings.dlq_stream, seq=seq, subject=settings.dlq_subject, next=True
        )
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code in (_NO_MESSAGE, None):
            return None
        raise NatsUnavailableError(display_url(settings), describe(exc)) from None
    except UNAVAILABLE_ERRORS as exc:
        raise NatsUnavailableError(display_url(settings), describe(exc)) from None
    headers: dict[str, str] = dict(raw.headers or {})
    return DeadLetter(
        dlq_seq=int(raw.seq or seq),
        payload=raw.data or b"",
        reason=headers.get(HEADER_REASON, ""),
        code=headers.get(HEADER_CODE, ""),
        stream=headers.get(HEADER_STREAM, ""),
        sequence=_int(headers.get(HEADER_SEQUENCE)),
        deliveries=_int(headers.get(HEADER_DELIVERIES)),
        failed_at=_when(headers.get(HEADER_FAILED_AT)),
        subject=headers.get(HEADER_SUBJECT, ""),
        msg_id=headers.get(HEADER_MSG_ID) or None,
        headers={k: v for k, v in headers.items() if not _ours_or_nats(k)},
        truncated_from=_int(headers.get(HEADER_TRUNCATED)) or None,
    )


def _ours_or_nats(name: str) -> bool:
    return name.startswith((NATS_HEADER_PREFIX, DLQ_HEADER_PREFIX, HEADER_REDRIVEN_FROM))


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _when(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
