--
-- peerguard: what a statement sent through Sluice may do to a peer.
--
-- A query naming a peer (peer.schema.table) runs read-only and may call
-- only functions known to be safe: Postgres' built-ins that are immutable
-- or stable, and a few volatile ones that change nothing (random(), ...).
-- And no statement, EXECUTE included, may consume, advance, copy, create,
-- drop or alter a replication slot or publication a mirror owns: read-only
-- mode does not stop the slot functions. Both are refused with 42501
-- before anything is sent.
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE t (id int PRIMARY KEY, v text);
    INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 3) g;
    CREATE SEQUENCE s;
    CREATE FUNCTION add_row() RETURNS int LANGUAGE sql VOLATILE
        AS 'INSERT INTO t VALUES (99, ''sneaked'') RETURNING 1';
$$);
CREATE MIRROR pguard FROM src TO dst WITH TABLE MAPPING (public.t:public.t);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''pguard'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, slot_name, publication_name FROM mirrors;

--
-- Read-only queries on a peer: the slot functions and every other function
-- that may change something are refused, naming the function or the mirror.
--

-- The mirror's slot by name: refused naming the mirror.
SELECT count(*) FROM src.public.t, pg_logical_slot_get_binary_changes('sluice_pguard', NULL, NULL,
    'proto_version', '1', 'publication_names', 'sluice_pguard');
SELECT pg_replication_slot_advance('sluice_pguard', pg_current_wal_lsn()) FROM src.public.t;
-- A slot that is no mirror's: still a volatile function.
SELECT pg_create_logical_replication_slot('evil', 'pgoutput') FROM src.public.t;
-- A slot named by an expression could be a mirror's.
SELECT pg_drop_replication_slot(slot_name) FROM src.pg_catalog.pg_replication_slots;
-- Functions that write.
SELECT nextval('s') FROM src.public.t;
SELECT add_row() FROM src.public.t;
SELECT set_config('default_transaction_' || 'read_only', 'off', false) FROM src.public.t;

-- Ordinary reads work as before: built-in immutable and stable functions,
-- aggregates, joins, casts, and harmless volatile functions.
SELECT id, upper(v), length(v), v::varchar(3) AS short FROM src.public.t ORDER BY id;
SELECT count(*), sum(id), string_agg(lower(v), ', ' ORDER BY id) FROM src.public.t;
SELECT a.id, b.id AS next FROM src.public.t a JOIN src.public.t b ON b.id = a.id + 1 ORDER BY a.id;
SELECT date_trunc('year', '2024-05-06'::date)::date AS year, now() <= clock_timestamp() AS ordered,
    random() < 1 AS random FROM src.public.t LIMIT 1;
-- Every transaction there is read-only.
SELECT current_setting('transaction_read_only') AS read_only FROM src.public.t LIMIT 1;

--
-- EXECUTE runs anything on a peer, but not on a mirror's slot or
-- publication.
--
EXECUTE src('SELECT pg_drop_replication_slot(''sluice_pguard'')');
EXECUTE src($$SELECT pg_copy_logical_replication_slot('sluice_pguard', 'copy')$$);
EXECUTE src('DROP PUBLICATION sluice_pguard');
EXECUTE src('ALTER PUBLICATION sluice_pguard DROP TABLE t');
-- Not named plainly, or inside a body Sluice does not read.
EXECUTE src($$SELECT pg_drop_replication_slot('sluice_' || 'pguard')$$);
EXECUTE src($q$DO $$ BEGIN PERFORM pg_drop_replication_slot('sluice_pguard'); END $$$q$);
-- A slot that is no mirror's is the user's business.
EXECUTE src($$SELECT slot_name FROM pg_create_logical_replication_slot('mine', 'pgoutput')$$);
EXECUTE src($$SELECT pg_drop_replication_slot('mine')$$);

-- The same holds for writes by peer name (peerwrite.sql), which are not
-- read-only and may call other functions.
INSERT INTO src.public.t SELECT 100, pg_drop_replication_slot('sluice_pguard')::text;
DELETE FROM src.public.t WHERE id IN (SELECT 1 FROM pg_replication_slot_advance('sluice_pguard', pg_current_wal_lsn()));
UPDATE src.public.t SET v = (SELECT slot_name::text FROM pg_copy_logical_replication_slot('sluice_pguard', 'copy'));
CREATE TABLE src.public.slots AS SELECT * FROM pg_logical_slot_get_changes('sluice_pguard', NULL, NULL);
INSERT INTO src.public.t SELECT 100, slot_name::text FROM pg_create_logical_replication_slot('mine2', 'pgoutput')
    RETURNING id, v;
DELETE FROM src.public.t WHERE id = 100 AND pg_drop_replication_slot('mine2')::text = '' RETURNING id;

-- The same holds for the catalog.
SELECT pg_drop_replication_slot('sluice_pguard');

--
-- Nothing was lost: the slot and publication are intact, and rows written
-- now reach the destination.
--
EXECUTE src($$SELECT slot_name, plugin FROM pg_replication_slots WHERE database = current_database() ORDER BY 1$$);
EXECUTE src($$SELECT pubname FROM pg_publication$$);
EXECUTE src($$INSERT INTO t VALUES (4, 'row 4')$$);
\set src_digest 'SELECT string_agg(id || '':'' || v, '','' ORDER BY id) AS s FROM src.public.t'
\set dst_digest 'SELECT string_agg(id || '':'' || v, '','' ORDER BY id) AS d FROM dst.public.t'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT id, v FROM dst.public.t ORDER BY id;

DROP MIRROR pguard;
