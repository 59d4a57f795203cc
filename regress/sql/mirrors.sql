--
-- mirrors: CREATE MIRROR validation, the mirror status tables, PAUSE,
-- RESUME and DROP MIRROR. Streaming itself is timing-dependent and is
-- covered by the Go tests in executor/; this file shows what an operator
-- types and reads.
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');

EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text, password text);
    CREATE TABLE orders (id int PRIMARY KEY, user_id int, total numeric(10,2));
    CREATE TABLE nokey (v text);
    INSERT INTO users SELECT g, 'u' || g || '@example.com', 'secret' FROM generate_series(1, 10) g;
$$);
EXECUTE dst('CREATE TABLE taken (id int)');

--
-- Validation: each of these changes nothing.
--

-- Peers must exist, and be Postgres peers.
CREATE MIRROR m FROM nosuch TO dst WITH TABLE MAPPING (public.users:public.users);
CREATE MIRROR m FROM src TO nosuch WITH TABLE MAPPING (public.users:public.users);
-- Tables must exist and have a primary key.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.missing:public.missing);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.nokey:public.nokey);
-- Destination names must be free.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.users:public.taken);
-- A table mapped twice, or two tables onto one.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:a, users:b);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:a, orders:a);
-- Excluded columns must exist; the key cannot be excluded.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: users, to: users, exclude: [nope]});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: users, to: users, exclude: [id]});
-- Options are checked: unknown ones are named, values are typed.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:users) WITH (colour = 'blue');
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:users) WITH (max_batch_size = 0);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:users) WITH (do_initial_copy = 'maybe');
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:users) WITH (resync_strategy = 'rename');
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (users:users) WITH (replication_slot_name = 'Bad-Name');
-- Nothing was made.
SELECT count(*) AS mirrors FROM mirrors;
EXECUTE src('SELECT (SELECT count(*) FROM pg_publication) AS publications, (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) AS slots');
EXECUTE dst($$SELECT count(*) AS tables FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', '_sluice')$$);

--
-- A mirror. PeerDB's staging options are accepted and reported as having
-- no effect; partition keys are checked.
--
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (
    {from: public.users, to: app.users, key: id, exclude: [password]},
    public.orders:public.orders
) WITH (do_initial_copy = true, snapshot_staging_path = '/tmp/x', resync_strategy = 'swap');
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.users:public.users2);
CREATE MIRROR IF NOT EXISTS m FROM src TO dst WITH TABLE MAPPING (public.users:public.users2);

SELECT name, source_peer, destination_peer, publication_name, slot_name FROM mirrors;
SELECT mirror, source_table, destination_table FROM mirror_tables ORDER BY source_table;
\d mirrors

-- The destination table exists at once, without the excluded column.
EXECUTE dst($$SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'app' AND table_name = 'users' ORDER BY ordinal_position$$);

-- Peers in use cannot be dropped.
DROP PEER src;

PAUSE MIRROR m;
SELECT name, status FROM mirrors;
PAUSE MIRROR m;
RESUME MIRROR m;
RESUME MIRROR m;
PAUSE MIRROR nosuch;
PAUSE MIRROR IF EXISTS nosuch;

-- A view of the user's on a destination table stops drop_destination_tables
-- up front, naming it: the slot, the publication, the tables and the mirror
-- stay as they were, and changes still arrive.
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''m'''
\ir include/wait.sql
\set ECHO all
EXECUTE dst('CREATE VIEW order_totals AS SELECT id, total FROM public.orders');
DROP MIRROR m WITH (drop_destination_tables = true);
SELECT name, status, error FROM mirrors;
EXECUTE src('SELECT (SELECT count(*) FROM pg_publication) AS publications, (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) AS slots');
EXECUTE dst($$SELECT count(*) AS tables FROM pg_tables WHERE schemaname IN ('app', 'public') AND tablename IN ('users', 'orders')$$);
EXECUTE src('INSERT INTO orders VALUES (1, 1, 9.99)');
\set wait_for 'EXECUTE dst(''SELECT count(*) = 1 AS done FROM public.order_totals'')'
\ir include/wait.sql
\set ECHO all
EXECUTE dst('SELECT * FROM order_totals');
EXECUTE dst('DROP VIEW order_totals');

-- Drop: the slot and publication go, the destination tables stay unless asked.
DROP MIRROR m WITH (drop_destination_tables = 'perhaps');
DROP MIRROR m WITH (drop_destination_tables = true);
DROP MIRROR m;
DROP MIRROR IF EXISTS m;
SELECT count(*) AS mirrors FROM mirrors;
SELECT mirror, kind FROM mirror_events WHERE kind IN ('created', 'paused', 'resumed', 'dropped') ORDER BY at;
EXECUTE src('SELECT (SELECT count(*) FROM pg_publication) AS publications, (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) AS slots');
EXECUTE dst($$SELECT count(*) AS tables FROM pg_tables WHERE schemaname IN ('app', 'public') AND tablename IN ('users', 'orders')$$);
DROP PEER src;
DROP PEER dst;
