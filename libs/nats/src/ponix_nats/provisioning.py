"""Make the envelope stream, the dead-letter stream and the durable consumer match the settings.

Each one is told apart as missing (create it), present with a drifted config (update what
JetStream lets us update, or raise :class:`ProvisioningError` naming the fields), or not
answerable (raise :class:`NatsUnavailableError`). "Any error means missing" was the seed's bug.
Re-running against a matching topology sends only the three info requests.

Retention is ``limits`` with discard ``old``: the stream keeps acked envelopes for ``audit`` and
redelivery, and a full stream drops its oldest messages rather than refusing publishes forever.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import nats.errors
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
from ponix_nats.connection import UNAVAILABLE_ERRORS, describe, display_url
from ponix_nats.errors import NatsUnavailableError, ProvisioningError

# JetStream error codes (server/errors.json) that mean "not there" and nothing else.
STREAM_NOT_FOUND: Final = 10059
CONSUMER_NOT_FOUND: Final = 10014

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
class ProvisionedTopology:
    """What :func:`ensure_jetstream` found and did: names, and what it created or updated
    (``"stream"``, ``"dlq_stream"``, ``"consumer"``; updates as ``"<what>.<field>"``)."""

    stream: str
    dlq_stream: str
    consumer: str
    subjects: tuple[str, ...]
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated)


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


async def ensure_jetstream(js: JetStreamContext, settings: NatsSettings) -> ProvisionedTopology:
    """Create or update the stream, the DLQ stream and the consumer; idempotent."""
    url = display_url(settings)
    created: list[str] = []
    updated: list[str] = []
    for label, wanted in (
        ("stream", stream_config(settings)),
        ("dlq_stream", dlq_stream_config(settings)),
    ):
        outcome = await _ensure_stream(js, wanted, url)
        if outcome is None:
            created.append(label)
        else:
            updated.extend(f"{label}.{name}" for name in outcome)
    outcome = await _ensure_consumer(js, settings.stream, consumer_config(settings), url)
    if outcome is None:
        created.append("consumer")
    else:
        updated.extend(f"consumer.{name}" for name in outcome)
    return ProvisionedTopology(
        stream=settings.stream,
        dlq_stream=settings.dlq_stream,
        consumer=settings.consumer,
        subjects=tuple(settings.subjects),
        created=tuple(created),
        updated=tuple(updated),
    )


async def _ensure_stream(js: JetStreamContext, wanted: StreamConfig, url: str) -> list[str] | None:
    """None when the stream was created, else the fields that were updated (maybe none)."""
    name = str(wanted.name)
    info = await _stream_info(js, name, url)
    if info is None:
        await _call(js.add_stream(wanted), url, name, wanted.subjects or [], ())
        return None

    drift = _drift(info.config, wanted, _STREAM_FIELDS)
    if not drift:
        return []
    _refuse_immutable(info.config, wanted, drift, _STREAM_IMMUTABLE, name)
    changes = {field: getattr(wanted, field) for field in drift}
    await _call(
        js.update_stream(info.config.evolve(**changes)), url, name, wanted.subjects or [], drift
    )
    return drift


async def _ensure_consumer(
    js: JetStreamContext, stream: str, wanted: ConsumerConfig, url: str
) -> list[str] | None:
    name = str(wanted.durable_name)
    info = await _consumer_info(js, stream, name, url)
    if info is None:
        await _call(js.add_consumer(stream, config=wanted), url, stream, [], (), consumer=name)
        return None

    drift = _drift(info.config, wanted, _CONSUMER_FIELDS)
    if not drift:
        return []
    _refuse_immutable(info.config, wanted, drift, _CONSUMER_IMMUTABLE, stream, consumer=name)
    changes = {field: getattr(wanted, field) for field in drift}
    # CONSUMER.CREATE on an existing durable with a changed config is JetStream's update.
    config = info.config.evolve(**changes)
    await _call(js.add_consumer(stream, config=config), url, stream, [], drift, consumer=name)
    return drift


async def _stream_info(js: JetStreamContext, name: str, url: str) -> StreamInfo | None:
    try:
        return await js.stream_info(name)
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code != STREAM_NOT_FOUND:
            raise _unexpected(name, exc) from None
        return None
    except UNAVAILABLE_ERRORS as exc:
        raise _unavailable(url, f"stream info {name}", exc) from None
    except nats.js.errors.APIError as exc:
        raise _unexpected(name, exc) from None


async def _consumer_info(
    js: JetStreamContext, stream: str, name: str, url: str
) -> ConsumerInfo | None:
    try:
        info: ConsumerInfo = await js.consumer_info(stream, name)
    except nats.js.errors.NotFoundError as exc:
        if exc.err_code != CONSUMER_NOT_FOUND:
            raise _unexpected(stream, exc, consumer=name) from None
        return None
    except UNAVAILABLE_ERRORS as exc:
        raise _unavailable(url, f"consumer info {stream}/{name}", exc) from None
    except nats.js.errors.APIError as exc:
        raise _unexpected(stream, exc, consumer=name) from None
    return info


async def _call(
    request: Any,
    url: str,
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
        raise _unavailable(url, f"provisioning {what}", exc) from None
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


def _drift(actual: Any, wanted: Any, fields: Iterable[str]) -> list[str]:
    return [f for f in fields if not _same(getattr(actual, f, None), getattr(wanted, f, None))]


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


def _refuse_immutable(
    actual: Any,
    wanted: Any,
    drift: Iterable[str],
    immutable: frozenset[str],
    stream: str,
    *,
    consumer: str | None = None,
) -> None:
    """Raise :class:`ProvisioningError` when ``drift`` touches a field JetStream cannot
    change in place, naming each such field with its current and wanted value."""
    frozen = sorted(immutable.intersection(drift))
    if frozen:
        shown = "; ".join(f"{f} is {_show(actual, f)}, wanted {_show(wanted, f)}" for f in frozen)
        raise ProvisioningError(
            stream, frozen, f"jetstream cannot change it in place ({shown})", consumer=consumer
        )


def _show(config: Any, field: str) -> str:
    value = getattr(config, field, None)
    return str(getattr(value, "value", value))


def describe_api_error(exc: nats.js.errors.APIError) -> str:
    text = exc.description or describe(exc)
    code = f" (err_code {exc.err_code})" if exc.err_code else ""
    return f"{text}{code}"


def _unavailable(url: str, doing: str, exc: BaseException) -> NatsUnavailableError:
    if isinstance(exc, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError):
        return NatsUnavailableError(url, f"{doing}: jetstream not enabled or not responding")
    if isinstance(exc, TimeoutError):
        return NatsUnavailableError(url, f"{doing}: timed out")
    return NatsUnavailableError(url, f"{doing}: {describe(exc)}")


def _unexpected(
    stream: str, exc: nats.js.errors.APIError, *, consumer: str | None = None
) -> ProvisioningError:
    return ProvisioningError(stream, [], describe_api_error(exc), consumer=consumer)
