-- 0015: River's queue in the catalog (catalog/river.go, docs/cluster.md).
-- River's migrations up to its version 5 ran in this transaction before
-- this file, making its tables in schema sluice; 0016 takes River to its
-- version 8 in a transaction of its own, since River's migration 6 uses an
-- enum value its migration 4 adds, which Postgres allows only once the
-- value is committed.

COMMENT ON TABLE sluice.river_job IS 'River''s jobs: the finite work of Sluice''s nodes (sluice_status.jobs)';
