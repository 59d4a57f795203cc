-- 0010: a mirror's position as its source shows it. last_synced_lsn is a
-- Postgres LSN, NULL for other sources (a MySQL binlog position); the flow
-- now also records the end of each applied batch as the source's kind
-- renders it (Postgres: 0/16B3748; MySQL: binlog.000042:1234), shown in
-- sluice_status.mirrors as position. Existing mirrors show their LSN.
-- And a source that keeps no publication or slot per mirror (MySQL) shows
-- NULL for their names.

ALTER TABLE sluice.mirrors ADD COLUMN last_synced_shown text;

UPDATE sluice.mirrors SET last_synced_shown = sluice.lsn(last_synced_lsn)::text
WHERE last_synced_lsn IS NOT NULL AND last_synced_lsn <> 0;

CREATE OR REPLACE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       NULLIF(publication_name, '') AS publication_name, NULLIF(slot_name, '') AS slot_name, created_at,
       resync IS NOT NULL AS resyncing,
       lag_measured_at, slot_wal_status, slot_safe_wal_size, last_synced_shown AS position
FROM sluice.mirrors;
