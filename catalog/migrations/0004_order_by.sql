-- 0004: the sorting key of a table on a ClickHouse destination (the
-- mapping's order_by; empty: the primary key).

ALTER TABLE sluice.mirror_tables ADD COLUMN order_by text[] NOT NULL DEFAULT '{}';

CREATE OR REPLACE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status,
       resync_strategy, resync_error, resync_started_at, resync_finished_at, order_by
FROM sluice.mirror_tables;
