"""Every Prometheus metric Ponix exports, in one place (names prefixed ``ponix_``).

Names follow the Prometheus conventions: a unit suffix (``_seconds``, ``_bytes``, ``_rows``,
``_messages``), ``_total`` on counters (added by prometheus_client), ``_timestamp_seconds`` on
a point in time. The README's metrics reference lists them with how to aggregate them.

Labels say what a series is about: ``stream`` and ``consumer`` for the consumer's series,
``table`` (``database.table``) for the writer's, ``client`` for a NATS connection's. A
component binds its label children once, when it is built (:class:`ConsumerMetrics`,
:class:`WriterMetrics`, ...), and hot paths count per batch (``inc(n)``), never per message.

A gauge's ``multiprocess_mode`` says how the values of several processes would combine in
prometheus_client's multiprocess mode; a process in the ordinary mode ignores it.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram, Info

__all__ = (
    "BUILD_INFO",
    "CLICKHOUSE_UP",
    "CONSUMED_BYTES",
    "CONSUMER_ACK_PENDING",
    "CONSUMER_IN_FLIGHT_BYTES",
    "CONSUMER_PENDING",
    "DEAD_LETTER_MESSAGES",
    "END_TO_END_LAG",
    "ENVELOPES_ACKED",
    "ENVELOPES_CONSUMED",
    "ENVELOPES_DEAD_LETTERED",
    "ENVELOPES_NAKKED",
    "ENVELOPES_PUBLISHED",
    "ENVELOPES_PUBLISH_DUPLICATES",
    "ENVELOPES_TERMINATED",
    "HELD_ROWS",
    "HELD_SECONDS",
    "HOLDS",
    "INSERTED_BYTES",
    "INSERT_BATCH_ROWS",
    "INSERT_DURATION",
    "INSERT_FAILURES",
    "IN_FLIGHT_BYTES",
    "IN_FLIGHT_ROWS",
    "LAST_INSERT_AT",
    "NATS_DISCONNECTS",
    "NATS_RECONNECTS",
    "NATS_UP",
    "ROWS_INSERTED",
    "ROWS_REJECTED",
    "ConsumerMetrics",
    "NatsClientMetrics",
    "PublisherMetrics",
    "WriterMetrics",
    "set_build_info",
    "table_label",
)

_CONSUMER: Final = ("stream", "consumer")
_CONSUMER_CODE: Final = ("stream", "consumer", "code")
_TABLE: Final = ("table",)
_TABLE_CODE: Final = ("table", "code")

# -- service ------------------------------------------------------------------------------------

BUILD_INFO = Info("ponix_build", "The running service and its version (the value is always 1).")

# -- publishing ---------------------------------------------------------------------------------

ENVELOPES_PUBLISHED = Counter(
    "ponix_envelopes_published",
    "Envelopes published and acknowledged by JetStream (duplicates included).",
    ["stream"],
)
ENVELOPES_PUBLISH_DUPLICATES = Counter(
    "ponix_envelopes_publish_duplicates",
    "Publishes JetStream dropped as duplicates of a Nats-Msg-Id in the duplicate window.",
    ["stream"],
)

# -- consuming ----------------------------------------------------------------------------------

ENVELOPES_CONSUMED = Counter(
    "ponix_envelopes_consumed", "Messages fetched from the consumer.", _CONSUMER
)
CONSUMED_BYTES = Counter(
    "ponix_consumed_bytes", "Payload bytes of the messages fetched from the consumer.", _CONSUMER
)
ENVELOPES_ACKED = Counter(
    "ponix_envelopes_acked", "Messages acked after their row was stored.", _CONSUMER
)
ENVELOPES_NAKKED = Counter(
    "ponix_envelopes_nakked",
    "Messages nakked with a delay after a transient failure, by error code.",
    _CONSUMER_CODE,
)
ENVELOPES_TERMINATED = Counter(
    "ponix_envelopes_terminated", "Messages termed (never redelivered), by code.", _CONSUMER_CODE
)
ENVELOPES_DEAD_LETTERED = Counter(
    "ponix_envelopes_dead_lettered",
    "Messages copied to the dead-letter stream, by code.",
    _CONSUMER_CODE,
)
END_TO_END_LAG = Histogram(
    "ponix_end_to_end_lag_seconds",
    "From the message's JetStream timestamp (publish) to its row stored; sampled: the first and "
    "the last message of each batch.",
    _CONSUMER,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)
CONSUMER_PENDING = Gauge(
    "ponix_consumer_pending_messages",
    "Messages in the stream not yet delivered to the consumer (the consumer's, shared by its "
    "replicas).",
    _CONSUMER,
)
CONSUMER_ACK_PENDING = Gauge(
    "ponix_consumer_ack_pending_messages",
    "Messages delivered to the consumer and not yet acked (the consumer's, shared by its "
    "replicas).",
    _CONSUMER,
)
CONSUMER_IN_FLIGHT_BYTES = Gauge(
    "ponix_consumer_in_flight_bytes",
    "Payload bytes of the messages delivered to this process and not yet settled (bounded).",
    _CONSUMER,
)
DEAD_LETTER_MESSAGES = Gauge(
    "ponix_dead_letter_messages",
    "Messages in the dead-letter stream (refreshed with the consumer's gauges).",
    ["stream"],
)

# -- writing ------------------------------------------------------------------------------------

INSERT_BATCH_ROWS = Histogram(
    "ponix_insert_batch_rows",
    "Rows per successful ClickHouse insert.",
    _TABLE,
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
INSERT_DURATION = Histogram(
    "ponix_insert_duration_seconds",
    "Duration of one successful ClickHouse insert.",
    _TABLE,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INSERT_FAILURES = Counter(
    "ponix_insert_failures", "ClickHouse inserts that failed, by error code.", _TABLE_CODE
)
ROWS_INSERTED = Counter("ponix_rows_inserted", "Rows ClickHouse accepted.", _TABLE)
INSERTED_BYTES = Counter(
    "ponix_inserted_bytes", "Payload bytes of the rows ClickHouse accepted.", _TABLE
)
LAST_INSERT_AT = Gauge(
    "ponix_last_insert_timestamp_seconds",
    "Unix time of the last successful insert.",
    _TABLE,
    multiprocess_mode="max",
)
IN_FLIGHT_ROWS = Gauge(
    "ponix_in_flight_rows",
    "Rows buffered in the writer, held or being inserted (bounded).",
    _TABLE,
    multiprocess_mode="livesum",
)
IN_FLIGHT_BYTES = Gauge(
    "ponix_in_flight_bytes",
    "Payload bytes of the rows buffered in the writer, held or being inserted (bounded).",
    _TABLE,
    multiprocess_mode="livesum",
)
HELD_ROWS = Gauge(
    "ponix_held_rows",
    "Rows the writer holds because ClickHouse refuses or fails their insert; retried in place.",
    _TABLE,
    multiprocess_mode="livesum",
)
HELD_SECONDS = Gauge(
    "ponix_held_seconds",
    "Seconds the oldest held batch has been held (0 when none is).",
    _TABLE,
)
HOLDS = Counter(
    "ponix_holds", "Times the writer started holding because ClickHouse failed an insert.", _TABLE
)
ROWS_REJECTED = Counter(
    "ponix_rows_rejected",
    "Rows ClickHouse rejected for their own content, isolated and dead-lettered, by reason.",
    _TABLE_CODE,
)

# -- connections --------------------------------------------------------------------------------

NATS_UP = Gauge(
    "ponix_nats_up", "1 while the NATS connection is up, 0 while it is down.", ["client"]
)
NATS_DISCONNECTS = Counter(
    "ponix_nats_disconnects", "Times the NATS connection was lost.", ["client"]
)
NATS_RECONNECTS = Counter(
    "ponix_nats_reconnects", "Times the NATS connection was re-established.", ["client"]
)
CLICKHOUSE_UP = Gauge(
    "ponix_clickhouse_up", "1 when ClickHouse answered the last ping (every 5 s), else 0."
)


def table_label(database: str, table: str) -> str:
    """The ``table`` label of the writer's series: ``database.table``."""
    return f"{database}.{table}"


def set_build_info(service: str, version: str) -> None:
    """``ponix_build_info{service, version} 1``."""
    BUILD_INFO.info({"service": service, "version": version})


class PublisherMetrics:
    """A producer's series, bound to its stream."""

    __slots__ = ("duplicates", "published")

    def __init__(self, stream: str) -> None:
        self.published = ENVELOPES_PUBLISHED.labels(stream)
        self.duplicates = ENVELOPES_PUBLISH_DUPLICATES.labels(stream)


class ConsumerMetrics:
    """A consumer's series, bound to its stream and consumer (and its DLQ stream). The series
    labelled by code are bound on first use and kept."""

    __slots__ = (
        "_by_code",
        "_labels",
        "ack_pending",
        "acked",
        "consumed",
        "consumed_bytes",
        "dead_letters",
        "in_flight_bytes",
        "lag",
        "pending",
    )

    def __init__(self, stream: str, consumer: str, dead_letter_stream: str) -> None:
        self._labels = (stream, consumer)
        self.consumed = ENVELOPES_CONSUMED.labels(stream, consumer)
        self.consumed_bytes = CONSUMED_BYTES.labels(stream, consumer)
        self.acked = ENVELOPES_ACKED.labels(stream, consumer)
        self.lag = END_TO_END_LAG.labels(stream, consumer)
        self.pending = CONSUMER_PENDING.labels(stream, consumer)
        self.ack_pending = CONSUMER_ACK_PENDING.labels(stream, consumer)
        self.in_flight_bytes = CONSUMER_IN_FLIGHT_BYTES.labels(stream, consumer)
        self.dead_letters = DEAD_LETTER_MESSAGES.labels(dead_letter_stream)
        self._by_code: dict[tuple[Counter, str], Counter] = {}

    def nakked(self, code: str) -> Counter:
        return self._coded(ENVELOPES_NAKKED, code)

    def terminated(self, code: str) -> Counter:
        return self._coded(ENVELOPES_TERMINATED, code)

    def dead_lettered(self, code: str) -> Counter:
        return self._coded(ENVELOPES_DEAD_LETTERED, code)

    def _coded(self, family: Counter, code: str) -> Counter:
        child = self._by_code.get((family, code))
        if child is None:
            child = self._by_code[family, code] = family.labels(*self._labels, code)
        return child


class WriterMetrics:
    """A writer's series, bound to its table (``database.table``)."""

    __slots__ = (
        "_by_code",
        "batch_rows",
        "duration",
        "held_rows",
        "held_seconds",
        "holds",
        "in_flight_bytes",
        "in_flight_rows",
        "inserted_bytes",
        "last_insert_at",
        "rows_inserted",
        "table",
    )

    def __init__(self, table: str) -> None:
        self.table = table
        self.batch_rows = INSERT_BATCH_ROWS.labels(table)
        self.duration = INSERT_DURATION.labels(table)
        self.rows_inserted = ROWS_INSERTED.labels(table)
        self.inserted_bytes = INSERTED_BYTES.labels(table)
        self.last_insert_at = LAST_INSERT_AT.labels(table)
        self.in_flight_rows = IN_FLIGHT_ROWS.labels(table)
        self.in_flight_bytes = IN_FLIGHT_BYTES.labels(table)
        self.held_rows = HELD_ROWS.labels(table)
        self.held_seconds = HELD_SECONDS.labels(table)
        self.holds = HOLDS.labels(table)
        self._by_code: dict[tuple[Counter, str], Counter] = {}

    def insert_failures(self, code: str) -> Counter:
        return self._coded(INSERT_FAILURES, code)

    def rows_rejected(self, code: str) -> Counter:
        return self._coded(ROWS_REJECTED, code)

    def _coded(self, family: Counter, code: str) -> Counter:
        child = self._by_code.get((family, code))
        if child is None:
            child = self._by_code[family, code] = family.labels(self.table, code)
        return child


class NatsClientMetrics:
    """One NATS connection's series, bound to its client name; ``up`` starts at 1 (made once
    connected)."""

    __slots__ = ("disconnects", "reconnects", "up")

    def __init__(self, client: str) -> None:
        self.up = NATS_UP.labels(client)
        self.disconnects = NATS_DISCONNECTS.labels(client)
        self.reconnects = NATS_RECONNECTS.labels(client)
