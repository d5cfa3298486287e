"""Container image tags the test suite, compose files and Tiltfile must agree on."""

from __future__ import annotations

# JetStream on, started with the devstack's nats-server.conf (sync_interval: always).
NATS_IMAGE = "nats:2.11-alpine"
# A modern ClickHouse, to run the migrations' modern path (DateTime64, JSON, dedup tokens).
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
