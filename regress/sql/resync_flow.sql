--
-- resync_flow: the resync scenario driven only through psql. A mirror of
-- two tables; the destination drifts; each kind of resync (RESYNC TABLE
-- with swap and with truncate, RESYNC MIRROR) brings it back to the source
-- while the source keeps changing. include/wait.sql polls a status query
-- until it holds (the flows run in the background).
--
-- peer_db is the source database, peer_db2 the destination.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
    CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, amount int);
    INSERT INTO users SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 5000) g;
    INSERT INTO orders SELECT g, 1 + g % 5000, g % 97 FROM generate_series(1, 20000) g;
$$);
CREATE MIRROR rf FROM src TO dst WITH TABLE MAPPING (public.users:public.users, public.orders:public.orders)
    WITH (do_initial_copy = true, replicate_foreign_keys = true, snapshot_num_rows_per_partition = 2000);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''rf'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, resyncing FROM mirrors;

-- What each side holds: a digest of every row of both tables, read from
-- each peer. include/same.sql compares them.
\set src_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS s FROM (SELECT ''u'' || id || '':'' || email AS r FROM src.public.users UNION ALL SELECT ''o'' || id || '':'' || user_id || '':'' || amount FROM src.public.orders) x'
\set dst_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS d FROM (SELECT ''u'' || id || '':'' || email AS r FROM dst.public.users UNION ALL SELECT ''o'' || id || '':'' || user_id || '':'' || amount FROM dst.public.orders) x'
-- The destination drifts: rows deleted and changed behind the mirror's back.
EXECUTE dst($$DELETE FROM orders WHERE id <= 100; UPDATE users SET email = 'drifted' WHERE id <= 50$$);
:src_digest \gset
:dst_digest \gset
SELECT :'s' = :'d' AS same_rows;

-- Swap: a shadow table is loaded and swapped in; readers never see it empty.
RESYNC TABLE rf.public.users WITH (strategy = 'swap');
EXECUTE src($$UPDATE users SET email = 'changed during the resync' WHERE id % 500 = 0$$);
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.users'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, resync_status, resync_strategy, rows_copied, resync_error FROM mirror_tables ORDER BY 1;

-- Truncate: the other table, referenced by nothing but referencing users.
RESYNC TABLE rf.orders WITH (strategy = 'truncate');
EXECUTE src($$INSERT INTO orders VALUES (20001, 1, 5); DELETE FROM orders WHERE id = 20000$$);
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.orders'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, resync_status, resync_strategy, rows_copied, resync_error FROM mirror_tables ORDER BY 1;
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;

-- The whole mirror: a new slot, shadow tables, one swap of both.
EXECUTE dst($$UPDATE orders SET amount = -1 WHERE id <= 10$$);
RESYNC MIRROR rf;
EXECUTE src($$INSERT INTO users VALUES (5001, 'new during the resync')$$);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''rf'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT name, status, resyncing, error FROM mirrors;
SELECT source_table, status, resync_status FROM mirror_tables ORDER BY 1;
SELECT message FROM mirror_events WHERE mirror = 'rf' AND kind = 'phase' ORDER BY at;
-- Phases are named as mirrors.status names them: no phase outside that vocabulary.
SELECT message AS phase_outside_status_vocabulary FROM mirror_events
WHERE kind = 'phase' AND substr(message, 7) NOT IN
      ('SETUP', 'SNAPSHOT', 'RESYNC', 'RUNNING', 'PAUSED', 'FAILED', 'COMPLETED');
EXECUTE dst($$SELECT count(*) AS resync_tables_left FROM pg_tables WHERE tablename LIKE '%\_resync'$$);

DROP MIRROR rf;
DROP PEER src;
DROP PEER dst;
