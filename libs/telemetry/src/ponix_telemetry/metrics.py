"""Every Prometheus metric Ponix exports, in one place (names prefixed ``ponix_``).

Hot paths count per batch (``inc(n)``), never per message.

A gauge's ``multiprocess_mode`` says how the values of several processes combine when they are
recorded in prometheus_client's multiprocess mode (the ingester's worker processes,
``ponix_workers``); a process in the ordinary mode ignores it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ENVELOPES_PUBLISHED = Counter(
    "ponix_envelopes_published", "Envelopes published and acknowledged by JetStream."
)
ENVELOPES_PUBLISH_DUPLICATES = Counter(
    "ponix_envelopes_publish_duplicates",
    "Publishes JetStream dropped as duplicates of a Nats-Msg-Id in the duplicate window.",
)
ENVELOPES_CONSUMED = Counter("ponix_envelopes_consumed", "Messages fetched from the consumer.")
ENVELOPES_ACKED = Counter("ponix_envelopes_acked", "Messages acked after their row was stored.")
ENVELOPES_NAKKED = Counter(
    "ponix_envelopes_nakked", "Messages nakked with a delay after a transient failure.", ["code"]
)
ENVELOPES_TERMINATED = Counter(
    "ponix_envelopes_terminated", "Messages termed (never redelivered).", ["code"]
)
ENVELOPES_DEAD_LETTERED = Counter(
    "ponix_envelopes_dead_lettered", "Messages copied to the dead-letter stream.", ["code"]
)
BATCH_ROWS = Histogram(
    "ponix_batch_rows",
    "Rows per ClickHouse insert.",
    buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
)
INSERT_SECONDS = Histogram(
    "ponix_insert_seconds",
    "Duration of one ClickHouse insert.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
INSERT_FAILURES = Counter(
    "ponix_insert_failures", "ClickHouse inserts that failed, by error code.", ["code"]
)
ROWS_INSERTED = Counter("ponix_rows_inserted", "Rows ClickHouse accepted.")
CONSUMER_PENDING = Gauge(
    "ponix_consumer_pending", "Messages in the stream not yet delivered to the consumer."
)
CONSUMER_ACK_PENDING = Gauge(
    "ponix_consumer_ack_pending", "Messages delivered to the consumer and not yet acked."
)
IN_FLIGHT_ROWS = Gauge(
    "ponix_in_flight_rows",
    "Rows buffered in the writer or being inserted (bounded).",
    multiprocess_mode="livesum",
)
LAST_INSERT_AT = Gauge(
    "ponix_last_insert_at_seconds",
    "Unix time of the last successful insert (UTC).",
    multiprocess_mode="max",
)
IN_FLIGHT_BYTES = Gauge(
    "ponix_in_flight_bytes",
    "Payload bytes of the rows buffered, held or being inserted (bounded).",
    multiprocess_mode="livesum",
)
CONSUMER_IN_FLIGHT_BYTES = Gauge(
    "ponix_consumer_in_flight_bytes",
    "Payload bytes of the messages delivered to the consumer and not yet settled (bounded).",
)
HELD_ROWS = Gauge(
    "ponix_held_rows",
    "Rows the writer holds because ClickHouse refuses or fails their insert; retried in place.",
    multiprocess_mode="livesum",
)
HELD_SECONDS = Gauge(
    "ponix_held_seconds", "Seconds the oldest held batch has been held (0 when none is)."
)
HOLDS = Counter(
    "ponix_holds", "Times the writer started holding because ClickHouse failed an insert."
)
ROWS_REJECTED = Counter(
    "ponix_rows_rejected",
    "Rows ClickHouse rejected for their own content, isolated and dead-lettered, by reason.",
    ["code"],
)
