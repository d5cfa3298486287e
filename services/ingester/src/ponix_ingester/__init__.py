"""Ponix ingester: JetStream to ClickHouse, one outcome per message."""

from ponix_ingester.ingester import Ingester
from ponix_ingester.processor import EnvelopeProcessor, fallback_key
from ponix_ingester.rows import (
    DECODE_FAILED,
    INVALID,
    TIMESTAMP_OUT_OF_RANGE,
    TOO_LARGE,
    Poison,
    Row,
    RowBuilder,
    TimeRange,
)
from ponix_ingester.settings import IngesterSettings

__all__ = (
    "DECODE_FAILED",
    "INVALID",
    "TIMESTAMP_OUT_OF_RANGE",
    "TOO_LARGE",
    "EnvelopeProcessor",
    "Ingester",
    "IngesterSettings",
    "Poison",
    "Row",
    "RowBuilder",
    "TimeRange",
    "fallback_key",
)
