--
-- alter_mirror: ALTER MIRROR ... SET (...) and RESET (...). Each change is
-- recorded in mirror_events; each error changes nothing and records
-- nothing. That a running flow follows a new max_batch_size is covered by
-- the Go test executor/mirror_alter_test.go.
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$ CREATE TABLE users (id int PRIMARY KEY, email text) $$);
CREATE MIRROR am FROM src TO dst WITH TABLE MAPPING (public.users:public.users);

-- Every option that can change: the batch limits, the load options, the
-- default resync strategy.
ALTER MIRROR am SET (max_batch_size = 50000, sync_interval = 5);
ALTER MIRROR am SET (snapshot_num_rows_per_partition = 1000, snapshot_max_parallel_workers = 2,
    snapshot_num_tables_in_parallel = 3, snapshot_num_partitions_override = 8, resync_strategy = swap);
ALTER MIRROR am SET (max_batch_size = '60000', resync_strategy = 'TRUNCATE');
-- The same values again: nothing changes, no event.
ALTER MIRROR am SET (max_batch_size = 60000);
-- RESET returns options to their defaults.
ALTER MIRROR am RESET (sync_interval);
ALTER MIRROR AM RESET (max_batch_size, snapshot_num_rows_per_partition, snapshot_max_parallel_workers,
    snapshot_num_tables_in_parallel, snapshot_num_partitions_override, resync_strategy);
ALTER MIRROR am RESET (sync_interval);
-- PeerDB's options that do nothing: a notice, as at CREATE MIRROR.
ALTER MIRROR am SET (script = 'x.lua', sync_interval = 2);
ALTER MIRROR am RESET (system);

-- Options that cannot change on an existing mirror.
ALTER MIRROR am SET (replication_slot_name = 'other_slot');
ALTER MIRROR am SET (publication_name = 'other_pub');
ALTER MIRROR am SET (soft_delete_col_name = 'deleted');
ALTER MIRROR am SET (synced_at_col_name = 'synced_at');
ALTER MIRROR am SET (do_initial_copy = false);
ALTER MIRROR am SET (initial_copy_only = true);
ALTER MIRROR am SET (replicate_indexes = true);
ALTER MIRROR am SET (replicate_foreign_keys = true);
ALTER MIRROR am SET (resync = true);
ALTER MIRROR am RESET (publication_name);
-- One refused option refuses the whole statement.
ALTER MIRROR am SET (max_batch_size = 10, replication_slot_name = 'x');
-- Values are checked as CREATE MIRROR checks them.
ALTER MIRROR am SET (max_batch_size = 0);
ALTER MIRROR am SET (sync_interval = -1);
ALTER MIRROR am SET (snapshot_max_parallel_workers = 'many');
ALTER MIRROR am SET (resync_strategy = 'rename');
-- Unknown options.
ALTER MIRROR am SET (sync_interval = 3, batch_size = 5);
ALTER MIRROR am RESET (nope);
-- Unknown mirror; IF EXISTS turns it into a notice.
ALTER MIRROR nosuch SET (max_batch_size = 5);
ALTER MIRROR IF EXISTS nosuch SET (max_batch_size = 5);
ALTER MIRROR nosuch RESET (sync_interval);
-- Not inside a transaction block.
BEGIN;
ALTER MIRROR am SET (sync_interval = 9);
ROLLBACK;
-- Syntax errors.
ALTER MIRROR am;
ALTER MIRROR am SET sync_interval = 1;
ALTER MIRROR am SET ();
ALTER MIRROR am RESET (sync_interval = 1);
ALTER MIRROR am RESET (sync_interval, sync_interval);
ALTER MIRROR am RENAME TO other;

-- Only the changes that happened are recorded.
SELECT kind, message FROM mirror_events WHERE mirror = 'am' AND kind = 'options' ORDER BY at;

DROP MIRROR am;
DROP PEER src;
DROP PEER dst;
