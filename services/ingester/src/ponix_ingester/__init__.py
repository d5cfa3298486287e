"""Ponix ingester: JetStream to ClickHouse."""
