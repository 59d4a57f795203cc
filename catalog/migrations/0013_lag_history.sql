-- 0013: replication lag in seconds, and its history. last_source_commit_at
-- is the source's commit time of the last transaction the destination
-- applied (written with last_synced_at); the mirrors view shows their
-- difference as lag_seconds, measured at last_synced_at, NULL until a
-- transaction with a commit time has been applied. mirror_lag_history
-- keeps a sample of each mirror's lag every 10 s for a window
-- (--lag-history-retention), so that lag over time is a SQL query.

ALTER TABLE sluice.mirrors ADD COLUMN last_source_commit_at timestamptz;

CREATE OR REPLACE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       NULLIF(publication_name, '') AS publication_name, NULLIF(slot_name, '') AS slot_name, created_at,
       resync IS NOT NULL AS resyncing,
       lag_measured_at, slot_wal_status, slot_safe_wal_size, last_synced_shown AS position,
       EXTRACT(epoch FROM last_synced_at - last_source_commit_at)::double precision AS lag_seconds,
       last_source_commit_at
FROM sluice.mirrors;

CREATE TABLE sluice.mirror_lag_history (
    mirror          text NOT NULL,
    at              timestamptz NOT NULL,
    lag_bytes       bigint,
    lag_seconds     double precision,
    rows_per_second double precision,
    PRIMARY KEY (mirror, at)
);
CREATE INDEX ON sluice.mirror_lag_history (at);

CREATE VIEW sluice_status.mirror_lag_history AS
SELECT mirror, at, lag_bytes, lag_seconds, rows_per_second FROM sluice.mirror_lag_history;
