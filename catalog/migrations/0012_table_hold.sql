-- 0012: per-table fault isolation and PAUSE/RESUME MIRROR m TABLE t. A
-- table whose changes fail to apply for a reason of its own (its
-- destination table dropped, a value that no longer converts, a
-- constraint) is held: status 'failed' with the reason in error, while the
-- other tables stream. A paused table is held the same way (status
-- 'paused'). hold_request is what a statement asked of the running flow
-- and it has not done yet: 'pause' or 'resume' (NULL: nothing). Where the
-- table stopped lives on the destination, beside its data.

ALTER TABLE sluice.mirror_tables
    ADD COLUMN error text,
    ADD COLUMN hold_request text;

CREATE OR REPLACE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status,
       resync_strategy, resync_error, resync_started_at, resync_finished_at, order_by,
       step, step_started_at, error
FROM sluice.mirror_tables;
