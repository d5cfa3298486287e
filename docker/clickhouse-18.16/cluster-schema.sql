-- clickhouse/cluster-schema.sql for ClickHouse 18.16, applied by the clickhouse-schema service of
-- docker/compose.cluster.zookeeper.yaml. The same layout, in 18.16's terms: DateTime('UTC') (no
-- DateTime64), no JSON alias, the cluster named literally (18.16 expands no macro in ON CLUSTER),
-- and the exact view over the replicated table (18.16's Distributed engine has no FINAL).
-- The columns are those migrations/0001 creates on 18.16.

CREATE DATABASE IF NOT EXISTS ponix ON CLUSTER ponix;

CREATE TABLE IF NOT EXISTS ponix.processed_envelopes_local ON CLUSTER ponix
(
    `id` String,
    `organization_id` String,
    `end_device_id` String,
    `occurred_at` DateTime('UTC'),
    `processed_at` DateTime('UTC'),
    `data` String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/ponix/processed_envelopes_local', '{replica}')
PARTITION BY toYYYYMM(`occurred_at`)
ORDER BY (`organization_id`, `occurred_at`, `end_device_id`, `id`);

CREATE TABLE IF NOT EXISTS ponix.processed_envelopes ON CLUSTER ponix
AS ponix.processed_envelopes_local
ENGINE = Distributed('ponix', 'ponix', 'processed_envelopes_local', cityHash64(`organization_id`, `end_device_id`));

CREATE VIEW IF NOT EXISTS ponix.processed_envelopes_exact ON CLUSTER ponix AS
SELECT `id`, `organization_id`, `end_device_id`, `occurred_at`, `processed_at`, `data`
FROM ponix.processed_envelopes_local FINAL;
