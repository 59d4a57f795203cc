--
-- resync_names: a resync never touches a table it did not create. The
-- destination has a user's tables under the names a shadow table would
-- first take (users_resync, users_resync_1), and the mirror has acct and
-- acct_resync side by side. RESYNC TABLE (swap) and RESYNC MIRROR pick
-- free names; the user's tables keep their rows and acct_resync keeps
-- streaming.
--
-- peer_db is the source database, peer_db2 the destination.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, v text);
    CREATE TABLE acct (id int PRIMARY KEY, v text);
    CREATE TABLE acct_resync (id int PRIMARY KEY, v text);
    INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;
    INSERT INTO acct SELECT g, 'a' || g FROM generate_series(1, 100) g;
    INSERT INTO acct_resync SELECT g, 'r' || g FROM generate_series(1, 100) g;
$$);
EXECUTE dst($$
    CREATE TABLE users_resync (keep_me text);
    INSERT INTO users_resync VALUES ('mine');
    CREATE TABLE users_resync_1 (keep_me text);
    INSERT INTO users_resync_1 VALUES ('mine too');
$$);
CREATE MIRROR rn FROM src TO dst WITH TABLE MAPPING
    (public.users:public.users, public.acct:public.acct, public.acct_resync:public.acct_resync);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''rn'''
\ir include/wait.sql
\set ECHO all
\set src_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS s FROM (SELECT ''u'' || id || v AS r FROM src.public.users UNION ALL SELECT ''a'' || id || v FROM src.public.acct UNION ALL SELECT ''r'' || id || v FROM src.public.acct_resync) x'
\set dst_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS d FROM (SELECT ''u'' || id || v AS r FROM dst.public.users UNION ALL SELECT ''a'' || id || v FROM dst.public.acct UNION ALL SELECT ''r'' || id || v FROM dst.public.acct_resync) x'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;

-- users_resync and users_resync_1 are taken: the shadow takes users_resync_2.
RESYNC TABLE rn.public.users WITH (strategy = 'swap');
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.users'''
\ir include/wait.sql
\set ECHO all
EXECUTE dst($$SELECT keep_me FROM users_resync UNION ALL SELECT keep_me FROM users_resync_1$$);

-- acct_resync is a mirrored table: acct's shadow takes acct_resync_1.
RESYNC TABLE rn.public.acct WITH (strategy = 'swap');
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.acct'''
\ir include/wait.sql
\set ECHO all
EXECUTE src($$INSERT INTO acct_resync VALUES (101, 'after the swap of acct')$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT name, status, error FROM mirrors;

-- The whole mirror, the same way.
RESYNC MIRROR rn;
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''rn'''
\ir include/wait.sql
\set ECHO all
EXECUTE src($$INSERT INTO acct_resync VALUES (102, 'after the mirror resync')$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT name, status, resyncing, error FROM mirrors;
SELECT source_table, status, resync_status FROM mirror_tables ORDER BY 1;
EXECUTE dst($$SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1$$);
EXECUTE dst($$SELECT keep_me FROM users_resync UNION ALL SELECT keep_me FROM users_resync_1$$);

DROP MIRROR rn;
EXECUTE dst($$SELECT keep_me FROM users_resync UNION ALL SELECT keep_me FROM users_resync_1$$);
DROP PEER src;
DROP PEER dst;
