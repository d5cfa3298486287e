"""Make the envelope stream, the dead-letter stream and the durable consumer match the settings,
or only say how they differ.

Only the ingester and ``ponix provision`` call :func:`ensure_jetstream`. Every other client
(``ponix publish``, ``status``, the producer) calls :func:`check_jetstream`, which changes
nothing: one publish from a laptop without ``NATS_REPLICAS=3`` must not turn a cluster's stream
down to one replica.

Each of the three is told apart as missing (create it), present with a drifted config (update
what JetStream lets us update, or raise :class:`ProvisioningError` naming the fields), or not
answerable (raise :class:`NatsUnavailableError`). "Any error means missing" was the seed's bug.
Re-running against a matching topology sends only the three info requests. Lowering replicas or
shrinking a limit (``max_age``, ``max_bytes``, ``max_msg_size``, ``duplicate_window``) is refused
with :class:`ShrinkRefusedError` unless ``allow_shrink`` (``NATS_ALLOW_SHRINK``); it loses data
or the dedup guarantee. Nothing is changed when anything is refused, and every change is logged
with its old and new value.

Retention is ``limits`` with discard ``old``: the stream keeps acked envelopes for ``audit`` and
redelivery, and a full stream drops its oldest messages rather than refusing publishes forever.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Self

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    DiscardPolicy,
    ReplayPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamInfo,
)

from ponix_config import NatsSettings
from ponix_nats.connection import UNAVAILABLE_ERRORS
from ponix_nats.errors import ProvisioningError, ShrinkRefusedError, StreamMissingError

# The consumer module imports these two from here (they live in ponix_nats.lookup).
from ponix_nats.lookup import CONSUMER_NOT_FOUND as CONSUMER_NOT_FOUND
from ponix_nats.lookup import STREAM_NOT_FOUND as STREAM_NOT_FOUND
from ponix_nats.lookup import consumer_info, stream_info, unavailable
from ponix_nats.lookup import describe_api_error as describe_api_error

log = logging.getLogger(__name__)

STREAM: Final = "stream"
DLQ_STREAM: Final = "dlq_stream"
CONSUMER: Final = "consumer"

# Changing these is refused by the server, so we name them instead of trying.
_STREAM_IMMUTABLE: Final = frozenset({"storage", "retention"})
_CONSUMER_IMMUTABLE: Final = frozenset({"ack_policy", "deliver_policy", "deliver_subject"})
_STREAM_FIELDS: Final = (
    "subjects",
    "retention",
    "storage",
    "num_replicas",
    "discard",
    "duplicate_window",
    "max_msg_size",
    "max_age",
    "max_bytes",
)
# Lowering one of these drops stored messages, refuses envelopes that fit before, or shortens
# the window in which a resend is recognised as a duplicate.
_LIMITS: Final = frozenset({"duplicate_window", "max_msg_size", "max_age", "max_bytes"})
_SECONDS: Final = frozenset({"duplicate_window", "max_age", "ack_wait"})
# Phrases of nats-server's API errors (server/errors.json) and the field each one is about.
_ERROR_MARKERS: Final = (
    ("subjects", "subjects overlap"),
    ("duplicate_window", "duplicates window"),
    ("storage", "storage type"),
    ("num_replicas", "replicas"),
    ("max_msg_size", "max message size"),
    ("max_deliver", "max deliver"),
    ("max_ack_pending", "max ack pending"),
)
_CONSUMER_FIELDS: Final = (
    "ack_policy",
    "deliver_policy",
    "deliver_subject",
    "filter_subject",
    "ack_wait",
    "max_deliver",
    "max_ack_pending",
)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field whose value on the server (``old``) differs from the settings' (``new``);
    values as shown in logs and errors (``604800s``, ``unlimited``)."""

    what: str
    """``"stream"``, ``"dlq_stream"`` or ``"consumer"``."""
    name: str
    """The stream's or the consumer's name."""
    field: str
    old: str
    new: str
    shrinks: bool = False
    """Lowers replicas or shrinks a limit: refused unless allowed."""

    @property
    def path(self) -> str:
        return f"{self.what}.{self.field}"

    def __str__(self) -> str:
        return f"{self.path} {self.old} -> {self.new}"


@dataclass(frozen=True, slots=True)
class TopologyCheck:
    """How the server's stream, DLQ stream and consumer differ from the settings; read-only."""

    stream: str
    dlq_stream: str
    consumer: str
    missing: tuple[str, ...] = ()
    """Of ``"stream"``, ``"dlq_stream"``, ``"consumer"``: those that do not exist."""
    drift: tuple[FieldChange, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.drift

    def require_stream(self) -> Self:
        """This check, or :class:`StreamMissingError` when the envelope stream does not exist."""
        if STREAM in self.missing:
            raise StreamMissingError(self.stream)
        return self

    def summary(self) -> str:
        """One line naming every difference, the server's value first."""
        parts = [f"{c.path} is {c.old} (settings: {c.new})" for c in self.drift]
        names = {STREAM: self.stream, DLQ_STREAM: self.dlq_stream, CONSUMER: self.consumer}
        parts += [f"{what} {names[what]} is missing" for what in self.missing]
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ProvisionedTopology:
    """What :func:`ensure_jetstream` found and did: names, what it created (``"stream"``,
    ``"dlq_stream"``, ``"consumer"``), and each field it changed."""

    stream: str
    dlq_stream: str
    consumer: str
    subjects: tuple[str, ...]
    created: tuple[str, ...] = ()
    changes: tuple[FieldChange, ...] = ()

    @property
    def updated(self) -> tuple[str, ...]:
        """The changed fields as ``"<what>.<field>"``."""
        return tuple(change.path for change in self.changes)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.changes)


def stream_config(settings: NatsSettings) -> StreamConfig:
    """The envelope stream as the settings describe it."""
    return StreamConfig(
        name=settings.stream,
        subjects=list(settings.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType(settings.storage),
        num_replicas=settings.replicas,
        discard=DiscardPolicy.OLD,
        duplicate_window=settings.duplicate_window,
        max_msg_size=settings.max_msg_size,
        max_age=settings.max_age,
        max_bytes=settings.max_bytes,
    )


def dlq_stream_config(settings: NatsSettings) -> StreamConfig:
    """The dead-letter stream: the original bytes plus our headers, so no size limit of its
    own (an envelope at the main stream's limit must still fit with the headers added)."""
    window = settings.duplicate_window
    if settings.dlq_max_age > 0:
        window = min(window, settings.dlq_max_age)
    return StreamConfig(
        name=settings.dlq_stream,
        subjects=[settings.dlq_subject],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType(settings.storage),
        num_replicas=settings.replicas,
        discard=DiscardPolicy.OLD,
        duplicate_window=window,
        max_msg_size=-1,
        max_age=settings.dlq_max_age,
        max_bytes=-1,
    )


# The server never gives up on a message (-1): the consumer dead-letters it after
# NATS_MAX_DELIVER deliveries, copy first, term second. A server-side limit would drop a message
# whose DLQ copy failed on its last allowed delivery: neither stored nor dead-lettered.
SERVER_MAX_DELIVER: Final = -1


def consumer_config(settings: NatsSettings) -> ConsumerConfig:
    """The durable pull consumer, filtering on exactly the subjects the stream binds;
    ``settings.max_deliver`` is enforced by :class:`~ponix_nats.BatchConsumer`, not here."""
    return ConsumerConfig(
        name=settings.consumer,
        durable_name=settings.consumer,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        replay_policy=ReplayPolicy.INSTANT,
        filter_subject=settings.subjects[0],
        ack_wait=settings.ack_wait,
        max_deliver=SERVER_MAX_DELIVER,
        max_ack_pending=settings.max_ack_pending,
    )


async def check_jetstream(js: JetStreamContext, settings: NatsSettings) -> TopologyCheck:
    """How the stream, the DLQ stream and the consumer differ from ``settings``; changes
    nothing (three info requests)."""
    stream, dlq, consumer = await _look_up(js, settings)
    return compare_topology(settings, stream=stream, dlq_stream=dlq, consumer=consumer)


def compare_topology(
    settings: NatsSettings,
    *,
    stream: StreamInfo | None,
    dlq_stream: StreamInfo | None,
    consumer: ConsumerInfo | None,
) -> TopologyCheck:
    """:func:`check_jetstream` on infos already read (``None``: missing)."""
    missing: list[str] = []
    drift: list[FieldChange] = []
    wanted: tuple[tuple[str, str, Any, Any, tuple[str, ...]], ...] = (
        (STREAM, settings.stream, stream, stream_config(settings), _STREAM_FIELDS),
        (DLQ_STREAM, settings.dlq_stream, dlq_stream, dlq_stream_config(settings), _STREAM_FIELDS),
        (CONSUMER, settings.consumer, consumer, consumer_config(settings), _CONSUMER_FIELDS),
    )
    for what, name, info, config, fields in wanted:
        if info is None:
            missing.append(what)
        else:
            drift += _changes(what, name, info.config, config, fields)
    return TopologyCheck(
        stream=settings.stream,
        dlq_stream=settings.dlq_stream,
        consumer=settings.consumer,
        missing=tuple(missing),
        drift=tuple(drift),
    )


async def ensure_jetstream(
    js: JetStreamContext, settings: NatsSettings, *, allow_shrink: bool | None = None
) -> ProvisionedTopology:
    """Create or update the stream, the DLQ stream and the consumer; idempotent.

    Refuses (:class:`ShrinkRefusedError`, nothing changed) to lower replicas or shrink a limit
    unless ``allow_shrink`` (default: ``settings.allow_shrink``). Logs every field it changes
    with its old and new value.
    """
    allowed = settings.allow_shrink if allow_shrink is None else allow_shrink
    stream, dlq, consumer = await _look_up(js, settings)
    check = compare_topology(settings, stream=stream, dlq_stream=dlq, consumer=consumer)
    _refuse_immutable(check, settings)
    shrinks = [change for change in check.drift if change.shrinks]
    if shrinks and not allowed:
        raise ShrinkRefusedError(settings.stream, [str(change) for change in shrinks])

    created: list[str] = []
    for what, info, wanted in (
        (STREAM, stream, stream_config(settings)),
        (DLQ_STREAM, dlq, dlq_stream_config(settings)),
    ):
        if await _apply_stream(js, settings, what, info, wanted, check.drift):
            created.append(what)
    if await _apply_consumer(js, settings, consumer, check.drift):
        created.append(CONSUMER)
    return ProvisionedTopology(
        stream=settings.stream,
        dlq_stream=settings.dlq_stream,
        consumer=settings.consumer,
        subjects=tuple(settings.subjects),
        created=tuple(created),
        changes=check.drift,
    )


async def _apply_stream(
    js: JetStreamContext,
    settings: NatsSettings,
    what: str,
    info: StreamInfo | None,
    wanted: StreamConfig,
    drift: Iterable[FieldChange],
) -> bool:
    """Create the stream (True) or update its drifted fields (False)."""
    name = str(wanted.name)
    subjects = wanted.subjects or []
    if info is None:
        await _call(js.add_stream(wanted), settings, name, subjects, ())
        _log_created(what, name)
        return True
    changes = [c for c in drift if c.what == what]
    if changes:
        fields = {c.field: getattr(wanted, c.field) for c in changes}
        update = js.update_stream(info.config.evolve(**fields))
        await _call(update, settings, name, subjects, list(fields))
        _log_changes(changes)
    return False


async def _apply_consumer(
    js: JetStreamContext,
    settings: NatsSettings,
    info: ConsumerInfo | None,
    drift: Iterable[FieldChange],
) -> bool:
    """Create the durable consumer (True) or update its drifted fields (False)."""
    stream, name = settings.stream, settings.consumer
    wanted = consumer_config(settings)
    if info is None:
        await _call(js.add_consumer(stream, config=wanted), settings, stream, [], (), consumer=name)
        _log_created(CONSUMER, name)
        return True
    changes = [c for c in drift if c.what == CONSUMER]
    if changes:
        fields = {c.field: getattr(wanted, c.field) for c in changes}
        # CONSUMER.CREATE on an existing durable with a changed config is JetStream's update.
        update = js.add_consumer(stream, config=info.config.evolve(**fields))
        await _call(update, settings, stream, [], list(fields), consumer=name)
        _log_changes(changes)
    return False


async def _look_up(
    js: JetStreamContext, settings: NatsSettings
) -> tuple[StreamInfo | None, StreamInfo | None, ConsumerInfo | None]:
    return (
        await stream_info(js, settings, settings.stream),
        await stream_info(js, settings, settings.dlq_stream),
        await consumer_info(js, settings, settings.stream, settings.consumer),
    )


def _log_created(what: str, name: str) -> None:
    log.info("jetstream created", extra={"what": what, "target": name})


def _log_changes(changes: Iterable[FieldChange]) -> None:
    for change in changes:
        log.info(
            "jetstream config changed",
            extra={
                "what": change.what,
                "target": change.name,
                "field": change.field,
                "old": change.old,
                "new": change.new,
            },
        )


async def _call(
    request: Any,
    settings: NatsSettings,
    stream: str,
    subjects: Iterable[str],
    fields: Iterable[str],
    *,
    consumer: str | None = None,
) -> None:
    what = f"{stream}/{consumer}" if consumer else stream
    try:
        await request
    except UNAVAILABLE_ERRORS as exc:
        raise unavailable(settings, f"provisioning {what}", exc) from None
    except nats.js.errors.APIError as exc:
        reason = describe_api_error(exc)
        named = _fields_named_by(reason)
        if "subjects" in named and subjects:
            reason = f"{', '.join(subjects)}: {reason}"
        raise ProvisioningError(
            stream, sorted(named or fields), reason, consumer=consumer
        ) from None


def _fields_named_by(reason: str) -> list[str]:
    """The config fields a JetStream error description is about, when it says."""
    text = reason.lower()
    return [field for field, marker in _ERROR_MARKERS if marker in text]


def _changes(
    what: str, name: str, actual: Any, wanted: Any, fields: Iterable[str]
) -> list[FieldChange]:
    found = []
    for field in fields:
        old, new = getattr(actual, field, None), getattr(wanted, field, None)
        if not _same(old, new):
            found.append(
                FieldChange(
                    what=what,
                    name=name,
                    field=field,
                    old=_show(field, old),
                    new=_show(field, new),
                    shrinks=_shrinks(field, old, new),
                )
            )
    return found


def _same(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, list) and isinstance(actual, list):
        return sorted(map(str, actual)) == sorted(map(str, wanted))
    if isinstance(wanted, float) or isinstance(actual, float):
        # Durations come back from nanoseconds; 0 and None both mean "no limit".
        return math.isclose(float(actual or 0), float(wanted or 0), abs_tol=1e-6)
    if wanted is None:
        return actual in (None, "", -1, 0)
    if actual is None and wanted in (-1, 0):
        return True
    return bool(actual == wanted)


def _shrinks(field: str, old: Any, new: Any) -> bool:
    if field == "num_replicas":
        return int(new or 1) < int(old or 1)
    if field not in _LIMITS:
        return False
    before, after = _limit(old), _limit(new)
    if after is None:
        return False
    return before is None or after < before


def _limit(value: Any) -> float | None:
    """A limit as a number, ``None`` for "unlimited" (JetStream's 0 or -1)."""
    if value is None or float(value) <= 0:
        return None
    return float(value)


def _show(field: str, value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    if (field in _LIMITS or field == "max_deliver") and _limit(value) is None:
        return "unlimited"
    if field in _SECONDS:
        # Seconds as NATS_MAX_AGE takes them: 2592000s, 0.5s (nanoseconds rounded to ms).
        return f"{float(value):.3f}".rstrip("0").rstrip(".") + "s"
    return str(value)


def _refuse_immutable(check: TopologyCheck, settings: NatsSettings) -> None:
    """Raise :class:`ProvisioningError` when the drift touches a field JetStream cannot change
    in place, naming each such field with its current and wanted value."""
    for what, immutable in (
        (STREAM, _STREAM_IMMUTABLE),
        (DLQ_STREAM, _STREAM_IMMUTABLE),
        (CONSUMER, _CONSUMER_IMMUTABLE),
    ):
        frozen = sorted(
            (c for c in check.drift if c.what == what and c.field in immutable),
            key=lambda c: c.field,
        )
        if not frozen:
            continue
        shown = "; ".join(f"{c.field} is {c.old}, wanted {c.new}" for c in frozen)
        stream = settings.dlq_stream if what == DLQ_STREAM else settings.stream
        raise ProvisioningError(
            stream,
            [c.field for c in frozen],
            f"jetstream cannot change it in place ({shown})",
            consumer=settings.consumer if what == CONSUMER else None,
        )
