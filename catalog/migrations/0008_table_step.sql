-- 0008: each table's current step (a small vocabulary, see
-- catalog.Step*: waiting, copying, building indexes, adding foreign keys,
-- applying changes since snapshot, swapping, validating foreign keys,
-- streaming, done) and when the table entered it, so that an operator sees
-- what a table is doing and for how long. Tables of existing mirrors start
-- at streaming (status running) or waiting; the flow sets the step as it
-- goes.

ALTER TABLE sluice.mirror_tables
    ADD COLUMN step text NOT NULL DEFAULT 'waiting',
    ADD COLUMN step_started_at timestamptz NOT NULL DEFAULT now();

UPDATE sluice.mirror_tables SET step = 'streaming' WHERE status = 'running';

-- rows_estimated is never below rows_copied (a copy that passed the
-- planner's estimate raises it).
UPDATE sluice.mirror_tables SET rows_estimated = rows_copied WHERE rows_estimated < rows_copied;

CREATE OR REPLACE VIEW sluice_status.mirror_tables AS
SELECT mirror, source_table, destination_table, status, rows_copied, rows_estimated,
       partitions_done, partitions_total, inserts, updates, deletes, resync_status,
       resync_strategy, resync_error, resync_started_at, resync_finished_at, order_by,
       step, step_started_at
FROM sluice.mirror_tables;
