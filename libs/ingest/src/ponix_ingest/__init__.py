"""The ingest step between the consumer and the writer: a fetched batch of envelopes becomes
ClickHouse rows, and each message gets its outcome (``EnvelopeProcessor``).

Nothing outside this package imports its modules directly: use the names re-exported here.
"""

from ponix_ingest.processor import ROW_REJECTED, EnvelopeProcessor

__all__ = ("ROW_REJECTED", "EnvelopeProcessor")
