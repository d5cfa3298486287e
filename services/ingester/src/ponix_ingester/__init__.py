"""Ponix ingester: JetStream to ClickHouse, one outcome per message."""

import os

# clickhouse-driver builds a date lookup table of every day from 1900 to 2299 at import time,
# about 22 MB of RSS for a column type we never use (timestamps travel as integers). Its own
# switch (spelled LASY) makes the table fill on demand; an unparsable range means "no warm-up".
# Set before anything imports clickhouse_driver; the idle-RSS budget is 70 MiB
# (docs/architecture.md, "Figures").
os.environ.setdefault("CLICKHOUSE_DRIVER_LASY_DATE_LUT", "on-demand")

from ponix_ingester.ingester import Ingester
from ponix_ingester.settings import IngesterSettings

__all__ = (
    "Ingester",
    "IngesterSettings",
)
