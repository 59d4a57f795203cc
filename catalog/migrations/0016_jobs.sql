-- 0016: the cluster's finite work as River jobs (docs/cluster.md). River's
-- migrations 6 to 8 ran in this transaction before this file
-- (catalog/river.go; 1 to 5 ran with 0015), its tables in schema sluice:
-- sluice.river_job holds every job, its args (jsonb) naming the mirror,
-- table and partition it works on. sluice_status.jobs shows them.

CREATE VIEW sluice_status.jobs AS
SELECT kind,
       args->>'mirror' AS mirror,
       args->>'table' AS "table",
       (args->>'partition')::int AS partition,
       attempted_by[cardinality(attempted_by)] AS node,
       state::text AS state,
       attempt::int AS attempt,
       attempted_at AS started_at,
       finalized_at AS finished_at,
       errors[cardinality(errors)]->>'error' AS error
FROM sluice.river_job;
