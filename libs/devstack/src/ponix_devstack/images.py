"""Container images the test suite, compose files and Tiltfile agree on.

The defaults are today's official images. ``NATS_IMAGE`` and ``CLICKHOUSE_IMAGE`` replace them,
the same variables docker/compose.deps.yaml reads: a private registry's copy, or a local
stand-in on a machine that reaches no registry.
"""

from __future__ import annotations

import os

NATS_IMAGE_ENV = "NATS_IMAGE"
CLICKHOUSE_IMAGE_ENV = "CLICKHOUSE_IMAGE"
# JetStream on, started with the devstack's nats-server.conf (sync_interval: always).
NATS_IMAGE = "nats:2.11-alpine"
# A modern ClickHouse, to run the migrations' modern path (DateTime64, JSON, dedup tokens).
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"


def nats_image() -> str:
    """``$NATS_IMAGE`` when set, else :data:`NATS_IMAGE`."""
    return os.environ.get(NATS_IMAGE_ENV, "").strip() or NATS_IMAGE


def clickhouse_image() -> str:
    """``$CLICKHOUSE_IMAGE`` when set, else :data:`CLICKHOUSE_IMAGE`."""
    return os.environ.get(CLICKHOUSE_IMAGE_ENV, "").strip() or CLICKHOUSE_IMAGE
