-- 0006: the slot monitor and errors that need the user.
--
-- lag_bytes is no longer written by the flow: a monitor measures it on the
-- source (pg_current_wal_lsn() - confirmed_flush_lsn of the mirror's slot)
-- in every status, with the time of the measurement, the slot's wal_status
-- and safe_wal_size. When the source cannot be reached, lag_bytes,
-- slot_wal_status and slot_safe_wal_size are NULL and lag_measured_at keeps
-- the time of the last measurement, so it shows how stale it is.
--
-- error_action marks an error that needs the user to act (RESYNC MIRROR,
-- PAUSE/RESUME, DROP MIRROR): the mirror stops retrying, and later errors
-- of the same outage do not replace the message. It means something only
-- while error is not NULL.

ALTER TABLE sluice.mirrors
    ADD COLUMN lag_measured_at timestamptz,
    ADD COLUMN slot_wal_status text,
    ADD COLUMN slot_safe_wal_size bigint,
    ADD COLUMN error_action boolean NOT NULL DEFAULT false;

CREATE OR REPLACE VIEW sluice_status.mirrors AS
SELECT name, source_peer, destination_peer,
       CASE WHEN desired = 'PAUSED' THEN 'PAUSED'
            WHEN error IS NOT NULL THEN 'FAILED'
            WHEN phase = 'CDC' THEN 'RUNNING'
            ELSE phase END AS status,
       lag_bytes, sluice.lsn(last_synced_lsn) AS last_synced_lsn, last_synced_at, rows_synced, error,
       publication_name, slot_name, created_at, resync IS NOT NULL AS resyncing,
       lag_measured_at, slot_wal_status, slot_safe_wal_size
FROM sluice.mirrors;
