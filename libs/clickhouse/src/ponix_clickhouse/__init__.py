"""ClickHouse BatchWriter, migrations and the yoyo clickhouse backend."""
