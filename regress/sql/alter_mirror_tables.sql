--
-- alter_mirror_tables: ALTER MIRROR ... ADD TABLE MAPPING (...) and DROP
-- TABLE on a streaming mirror, through psql: the grammar, the refusals
-- (each changes nothing and records nothing), an added table loaded while
-- the other streams, a dropped table whose changes stop. The loads under a
-- write load and a kill -9 are covered by executor/alter_tables_test.go.
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text);
    CREATE TABLE items (id int PRIMARY KEY, name text, secret text);
    CREATE TABLE invoices (id int PRIMARY KEY, amount int);
    CREATE TABLE nokey (id int, v text);
    INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;
    INSERT INTO items SELECT g, 'item' || g, 'pw' || g FROM generate_series(1, 3000) g;
    INSERT INTO invoices SELECT g, g % 100 FROM generate_series(1, 2000) g;
$$);
EXECUTE dst($$CREATE TABLE taken (id int)$$);
CREATE MIRROR mt FROM src TO dst WITH TABLE MAPPING (public.users:public.users);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''mt'''
\ir include/wait.sql
\set ECHO all

-- Refusals: the source table is missing, has no key, its destination name
-- is taken or already mapped, it is in the mirror already or mapped twice.
ALTER MIRROR mt ADD TABLE MAPPING (public.invoices:public.invoices, public.missing:public.missing);
ALTER MIRROR mt ADD TABLE MAPPING (public.nokey:public.nokey);
ALTER MIRROR mt ADD TABLE MAPPING (public.invoices:public.taken);
ALTER MIRROR mt ADD TABLE MAPPING (public.invoices:public.users);
ALTER MIRROR mt ADD TABLE MAPPING (public.users:public.users2);
ALTER MIRROR mt ADD TABLE MAPPING (invoices:a, invoices:b);
ALTER MIRROR mt ADD TABLE MAPPING ({from: public.items, to: items, exclude: [nope]});
ALTER MIRROR mt ADD TABLE MAPPING ({from: public.items, to: items, order_by: [id]});
-- Options: only do_initial_copy, a boolean.
ALTER MIRROR mt ADD TABLE MAPPING (invoices:invoices) WITH (initial_copy_only = true);
ALTER MIRROR mt ADD TABLE MAPPING (invoices:invoices) WITH (do_initial_copy = 'sometimes');
-- DROP TABLE: not in the mirror, the last table, unknown options.
ALTER MIRROR mt DROP TABLE public.invoices;
ALTER MIRROR mt DROP TABLE users;
ALTER MIRROR mt DROP TABLE users WITH (cascade = true);
ALTER MIRROR mt DROP TABLE users WITH (drop_destination_table = maybe);
-- Unknown mirror; IF EXISTS turns it into a notice.
ALTER MIRROR nosuch ADD TABLE MAPPING (invoices:invoices);
ALTER MIRROR IF EXISTS nosuch ADD TABLE MAPPING (invoices:invoices);
ALTER MIRROR IF EXISTS nosuch DROP TABLE users;
-- Not inside a transaction block.
BEGIN;
ALTER MIRROR mt DROP TABLE users;
ROLLBACK;
-- Syntax errors.
ALTER MIRROR mt ADD invoices:invoices;
ALTER MIRROR mt ADD TABLE (invoices:invoices);
ALTER MIRROR mt ADD TABLE MAPPING ();
ALTER MIRROR mt ADD TABLE MAPPING (invoices:invoices) invoices;
ALTER MIRROR mt DROP users;
ALTER MIRROR mt DROP TABLE;
ALTER MIRROR mt DROP TABLE users, items;
-- Nothing changed: the mirror's tables, its events, the destination.
SELECT source_table, destination_table FROM mirror_tables WHERE mirror = 'mt' ORDER BY 1;
SELECT count(*) AS table_events FROM mirror_events WHERE mirror = 'mt' AND kind = 'tables';
SELECT table_name FROM dst.information_schema.tables WHERE table_schema = 'public' ORDER BY 1;

-- Two tables added: one loaded (the default), with a column excluded.
ALTER MIRROR mt ADD TABLE MAPPING (public.invoices:public.invoices, {from: public.items, to: items, exclude: [secret]});
EXECUTE src($$INSERT INTO users VALUES (101, 'during the load'); UPDATE items SET name = 'changed' WHERE id <= 10$$);
\set wait_for 'SELECT bool_and(resync_status = ''done'') AS done FROM mirror_tables WHERE mirror = ''mt'' AND source_table <> ''public.users'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, destination_table, status, step, resync_status, resync_strategy, rows_copied
FROM mirror_tables WHERE mirror = 'mt' ORDER BY 1;
\set src_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS s FROM (SELECT ''u'' || id || '':'' || email AS r FROM src.public.users UNION ALL SELECT ''i'' || id || '':'' || name FROM src.public.items UNION ALL SELECT ''v'' || id || '':'' || amount FROM src.public.invoices) x'
\set dst_digest 'SELECT md5(string_agg(r, '','' ORDER BY r)) AS d FROM (SELECT ''u'' || id || '':'' || email AS r FROM dst.public.users UNION ALL SELECT ''i'' || id || '':'' || name FROM dst.public.items UNION ALL SELECT ''v'' || id || '':'' || amount FROM dst.public.invoices) x'
\set wait_probe same.sql
\ir include/wait.sql
\unset wait_probe
\set ECHO all
SELECT :'s' = :'d' AS same_rows;
SELECT column_name FROM dst.information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position;

-- DROP TABLE: the table leaves the mirror; its destination table stays
-- unless drop_destination_table.
ALTER MIRROR mt DROP TABLE public.invoices;
ALTER MIRROR mt DROP TABLE items WITH (drop_destination_table = true);
SELECT source_table FROM mirror_tables WHERE mirror = 'mt' ORDER BY 1;
SELECT table_name FROM dst.information_schema.tables WHERE table_schema = 'public' ORDER BY 1;
EXECUTE src($$INSERT INTO invoices VALUES (-1, 1); INSERT INTO users VALUES (-1, 'after the drop')$$);
\set wait_for 'SELECT count(*) = 1 AS done FROM dst.public.users WHERE id = -1'
\ir include/wait.sql
\set ECHO all
SELECT count(*) AS dropped_table_rows_after FROM dst.public.invoices WHERE id = -1;

-- A table added without its load: only changes from now on arrive.
ALTER MIRROR mt ADD TABLE MAPPING (invoices:invoices_new) WITH (do_initial_copy = false);
EXECUTE src($$UPDATE invoices SET amount = 0 WHERE id = 5$$);
\set wait_for 'SELECT count(*) = 1 AS done FROM dst.public.invoices_new'
\ir include/wait.sql
\set ECHO all
SELECT id, amount FROM dst.public.invoices_new;

SELECT kind, message FROM mirror_events WHERE mirror = 'mt' AND kind = 'tables' ORDER BY at;

DROP MIRROR mt WITH (drop_destination_tables = true);
EXECUTE dst($$DROP TABLE invoices, taken$$);
DROP PEER src;
DROP PEER dst;
