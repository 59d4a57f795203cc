-- 0003: resync. A full-mirror resync runs the mirror through SETUP and
-- SNAPSHOT again into shadow tables, then the RESYNC phase swaps them in;
-- mirrors.resync says a resync is under way. A table resync is tracked per
-- table: resync_status (pending, in_progress, done, failed), the strategy
-- chosen for it and the last error.

ALTER TABLE sluice.mirrors ADD COLUMN resync text;

ALTER TABLE sluice.mirror_tables
    ADD COLUMN resync_strategy text,
    ADD COLUMN resync_error text,
    ADD COLUMN resync_started_at timestamptz,
    ADD COLUMN resync_finished_at timestamptz;

CREATE OR REPLACE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       publication_name, slot_name, created_at, resync IS NOT NULL AS resyncing
FROM sluice.mirrors;

CREATE OR REPLACE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status,
       resync_strategy, resync_error, resync_started_at, resync_finished_at
FROM sluice.mirror_tables;
