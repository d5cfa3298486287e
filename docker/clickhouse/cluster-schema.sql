-- The envelope table for the ClickHouse cluster of docker/compose.cluster.yaml:
-- ReplicatedReplacingMergeTree on every replica, behind a Distributed table of the name the
-- services use (CLICKHOUSE_TABLE's default, processed_envelopes), plus the exact-read view.
--
-- NOT APPLIED BY THE SERVICES. The ingester's start-up migrations (migrations/0001, also shipped
-- in ponix_clickhouse) target a single server and create a plain ReplacingMergeTree, so the
-- cluster compose file turns them off (INGESTER_MIGRATE=false) and applies this file instead,
-- once, before any ingester starts: the one-shot `clickhouse-schema` service. By hand, against
-- any one replica:
--
--   clickhouse-client --host clickhouse-1 --user "$CLICKHOUSE_USER" \
--       --password "$CLICKHOUSE_PASSWORD" --multiquery < docker/clickhouse/cluster-schema.sql
--
-- or through yoyo, which also records it:
--   CLICKHOUSE_MIGRATIONS_DIR=migrations/cluster ponix migrate
--
-- It is the DDL of migrations/cluster/0001_create_processed_envelopes_cluster.py on a modern
-- server (>= 25.3), written out for clickhouse-client; tests/unit/deploy checks that the two stay
-- equal (formatted by chdb's ClickHouse parser). Change the migration first, then this file.
--
-- Every statement is IF NOT EXISTS and ON CLUSTER: safe to re-run, and it reaches every replica.
-- '{cluster}', {shard} and {replica} are macros from clickhouse/macros.xml.

CREATE DATABASE IF NOT EXISTS ponix ON CLUSTER '{cluster}';

-- The rows, replicated through Keeper. ReplacingMergeTree with the envelope id last in the
-- sorting key: a redelivered envelope collapses into one row at merge time, and exact reads use
-- FINAL. Replicated tables also drop a repeated insert block (insert_deduplication_token), so a
-- batch the ingester retries after a timeout does not land twice.
CREATE TABLE IF NOT EXISTS ponix.processed_envelopes_local ON CLUSTER '{cluster}'
(
    `id` String,
    `organization_id` String,
    `end_device_id` String,
    `occurred_at` DateTime64(3, 'UTC'),
    `processed_at` DateTime64(3, 'UTC'),
    `data` String,
    `data_json` JSON ALIAS CAST(`data`, 'JSON')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ponix/processed_envelopes_local', '{replica}')
PARTITION BY toYYYYMM(`occurred_at`)
ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`);

-- What the services read and write. Every copy of an envelope has the same organization and
-- device, so the sharding key sends all its duplicates to one shard and FINAL stays exact (with
-- one shard today that only matters once a second shard joins clickhouse/remote-servers.xml).
-- Inserts through it are synchronous (distributed_foreground_insert in clickhouse/profiles.xml),
-- so "INSERT returned, then ack" still means the rows are stored on a replica.
CREATE TABLE IF NOT EXISTS ponix.processed_envelopes ON CLUSTER '{cluster}'
AS ponix.processed_envelopes_local
ENGINE = Distributed('{cluster}', 'ponix', 'processed_envelopes_local', cityHash64(`organization_id`, `end_device_id`));

-- Exact answers: duplicates not yet merged away are collapsed at read time.
CREATE VIEW IF NOT EXISTS ponix.processed_envelopes_exact ON CLUSTER '{cluster}' AS
SELECT `id`, `organization_id`, `end_device_id`, `occurred_at`, `processed_at`, `data`, `data_json`
FROM ponix.processed_envelopes FINAL;
