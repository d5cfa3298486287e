"""Settling: a batch's outcomes become acks, naks, or a DLQ copy then a term; ``in_progress``
keeps a batch that is still being stored from being redelivered.

Rules (docs/architecture.md, "Ack semantics"):

* ``Ack``: the row is stored; ``await msg.ack()``. An all-ack result is one tight loop; each ack
  only appends to nats-py's write buffer, so gathering them as tasks would only add overhead.
* ``Nak``: redeliver after its delay, or after the exponential backoff of the delivery count.
  A counted nak (the message's own failure) on the delivery ``max_deliver`` is dead-lettered
  with its last error instead. An uncounted one (the store's failure) never is.
* ``Term``: poison. The DLQ copy first, the term second: a message is never termed without its
  copy stored. A copy that failed is nakked instead, so the message comes back and tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe
from ponix_nats.errors import PublishError
from ponix_nats.outcome import Ack, Nak, ProcessingResult, Term, Uniform
from ponix_runner import Backoff

__all__ = ("DEAD_LETTER_FAILED", "DeadLetters", "SettlePolicy", "Settled", "keep_alive", "settle")

log = logging.getLogger(__name__)

DEAD_LETTER_FAILED: Final = "nats.dead_letter_failed"
_TERM: Final = b"+TERM"
# nats-server puts the term reason in its advisory; a long traceback belongs in the logs.
_TERM_REASON_BYTES: Final = 512


class DeadLetters(Protocol):
    """Where poison is copied before it is termed (``DeadLetterPublisher``)."""

    async def publish_many(
        self, letters: Sequence[tuple[Msg, str, str]]
    ) -> Sequence[PublishError | None]: ...


@dataclass(frozen=True, slots=True)
class SettlePolicy:
    """The consumer settings settling needs: the delivery budget and the nak backoff."""

    max_deliver: int
    nak_backoff: Backoff

    @classmethod
    def from_settings(cls, settings: NatsSettings) -> SettlePolicy:
        return cls(
            settings.max_deliver,
            Backoff(initial=settings.nak_delay_initial, maximum=settings.nak_delay_max),
        )


@dataclass(slots=True)
class Settled:
    """What settling a batch did, by outcome (``nakked`` and ``termed`` by code); the consumer
    counts it in its metrics. A termed message was dead-lettered first."""

    acked: int = 0
    nakked: dict[str, int] = field(default_factory=dict)
    termed: dict[str, int] = field(default_factory=dict)
    dead_letter_failures: int = 0


async def settle(
    msgs: Sequence[Msg],
    result: ProcessingResult,
    policy: SettlePolicy,
    dead_letters: DeadLetters,
    nc: Client,
) -> Settled:
    """Apply ``result`` (one outcome per message, in order) to ``msgs``; see the module doc.

    Raises only what the connection raises; the messages left unsettled then come back after
    ``ack_wait``.
    """
    outcomes = result.outcomes
    if len(outcomes) != len(msgs):
        detail = f"{len(outcomes)} outcomes for {len(msgs)} messages"
        raise ValueError(detail)
    settled = Settled()
    if type(outcomes) is Uniform and type(outcomes.outcome) is Ack:
        for msg in msgs:
            await msg.ack()
        settled.acked = len(msgs)
        return settled
    doomed: list[tuple[Msg, str, str]] = []
    nakked = settled.nakked
    for msg, outcome in zip(msgs, outcomes, strict=True):
        kind = type(outcome)
        if kind is Ack:
            await msg.ack()
            settled.acked += 1
        elif kind is Nak:
            assert isinstance(outcome, Nak)
            deliveries = msg.metadata.num_delivered
            if outcome.counted and deliveries >= policy.max_deliver:
                doomed.append((msg, outcome.code, f"max_deliver reached: {outcome.error}"))
                continue
            delay = outcome.delay
            if delay is None:
                delay = policy.nak_backoff.delay(deliveries)
            await msg.nak(delay=delay)
            nakked[outcome.code] = nakked.get(outcome.code, 0) + 1
        else:
            assert isinstance(outcome, Term)
            doomed.append((msg, outcome.code, outcome.reason))
    if doomed:
        await _dead_letter(doomed, policy, dead_letters, nc, settled)
    return settled


async def _dead_letter(
    doomed: list[tuple[Msg, str, str]],
    policy: SettlePolicy,
    dead_letters: DeadLetters,
    nc: Client,
    settled: Settled,
) -> None:
    errors = await dead_letters.publish_many(doomed)
    termed = settled.termed
    nakked = settled.nakked
    for (msg, code, reason), error in zip(doomed, errors, strict=True):
        if error is None:
            # +TERM with a reason (nats-server >= 2.10.4 puts it in the advisory); nats-py
            # 2.16's Msg.term() takes none, so the same protocol line goes out by publish.
            await nc.publish(msg.reply, _TERM + b" " + reason.encode()[:_TERM_REASON_BYTES])
            termed[code] = termed.get(code, 0) + 1
        else:
            settled.dead_letter_failures += 1
            await msg.nak(delay=policy.nak_backoff.delay(msg.metadata.num_delivered))
            nakked[DEAD_LETTER_FAILED] = nakked.get(DEAD_LETTER_FAILED, 0) + 1
    if settled.dead_letter_failures:
        first = next(e for e in errors if e is not None)
        log.error(
            "dead-letter copy failed, nakked instead of termed",
            extra={"messages": settled.dead_letter_failures, "error": str(first)},
        )


async def keep_alive(msgs: Sequence[Msg]) -> None:
    """``in_progress`` for every message not settled yet: resets its ``ack_wait``, so a batch
    held by a slow or refusing store is never redelivered. A connection failure is logged at
    debug level: the next beat tries again, ``ack_wait`` permitting."""
    try:
        for msg in msgs:
            if not msg.is_acked:
                await msg.in_progress()
    except (nats.errors.Error, *UNAVAILABLE_ERRORS) as exc:
        log.debug("in_progress failed", extra={"error": describe(exc)})
