--
-- peerdb: PeerDB's scripts run unchanged. EXECUTE peer("...") with the
-- query double-quoted, and the mirror options resync and
-- snapshot_num_partitions_override.
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');

--
-- EXECUTE peer("query"): the query is the double-quoted text, doubled
-- double quotes undoubled, never truncated as a name would be.
--
EXECUTE src("SELECT 1");
EXECUTE src("CREATE TABLE t (id int PRIMARY KEY, v text NOT NULL)");
EXECUTE src("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 10000) g");
EXECUTE src("ANALYZE t");
EXECUTE src("SELECT id AS ""Id"", v AS a_column_label_longer_than_sixty_three_bytes_which_a_name_cannot_be FROM t WHERE id = 1");
-- An error's position points into the text as typed.
EXECUTE src("SELECT v FROM t WHERE nosuch = 1");

--
-- Mirror options.
--
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t) WITH (snapshot_num_partitions_override = -1);
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t) WITH (resync = 'maybe');
-- snapshot_num_partitions_override sets how many partitions the initial
-- load has (rather than snapshot_num_rows_per_partition's 250000 rows,
-- which would make one); resync = false on a new mirror changes nothing.
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t)
    WITH (do_initial_copy = true, snapshot_num_partitions_override = 4, resync = false);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''pm'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, status, partitions_done, partitions_total, rows_copied FROM mirror_tables WHERE mirror = 'pm';
SELECT count(*) AS rows FROM dst.public.t;

-- resync = true on an existing mirror of another definition is refused.
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t2) WITH (resync = true);
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t) WITH (resync = true, max_batch_size = 10);
-- Without resync, an existing mirror is an error as ever.
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t)
    WITH (do_initial_copy = true, snapshot_num_partitions_override = 4);
-- resync = true on the same definition re-creates the mirror as a full
-- resync: the destination drifted, and comes back to the source's rows.
EXECUTE dst("DELETE FROM t WHERE id <= 100");
CREATE MIRROR pm FROM src TO dst WITH TABLE MAPPING (public.t:public.t)
    WITH (do_initial_copy = true, snapshot_num_partitions_override = 4, resync = true);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''pm'''
\ir include/wait.sql
\set ECHO all
SELECT count(*) AS rows FROM dst.public.t;
SELECT kind, message FROM mirror_events WHERE mirror = 'pm' AND kind IN ('created', 'resync') ORDER BY at LIMIT 2;
SELECT count(*) AS mirrors FROM mirrors;

DROP MIRROR pm;
DROP PEER src;
DROP PEER dst;
