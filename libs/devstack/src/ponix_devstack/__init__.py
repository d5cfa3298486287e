"""Real nats-server and ClickHouse child processes for tests, dev and bench."""
