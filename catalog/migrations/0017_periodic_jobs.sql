-- 0017: the periodic samplers as River jobs (docs/cluster.md#where-periodic-work-runs).
-- The slot monitor's round and the lag history's sample run as one job
-- each a period, on whichever node takes it, so what one round needs of
-- the round before is kept here rather than in a node's memory:
-- mirrors.slot_active is whether a reader streams from the mirror's slot
-- (shown in sluice_status.mirrors, and the metric sluice_slot_active every
-- node exports from it); mirrors.lag_warning is the source's warning in
-- effect (a lag event is recorded when one appears, once until it
-- clears); mirror_lag_history.rows_synced is the mirror's rows_synced at
-- the sample, which the next sample's rows_per_second is computed from.

ALTER TABLE sluice.mirrors ADD COLUMN slot_active boolean, ADD COLUMN lag_warning text;

ALTER TABLE sluice.mirror_lag_history ADD COLUMN rows_synced bigint;

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
       last_source_commit_at, node, slot_active
FROM sluice.mirrors;
