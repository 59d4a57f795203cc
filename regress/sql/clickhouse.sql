--
-- clickhouse: a mirror from Postgres into ClickHouse driven only through
-- psql. The initial load, changes (a TOAST value left unchanged, a key
-- change, deletes kept as rows marked deleted), RESYNC TABLE with a new
-- sorting key, RESYNC MIRROR; ClickHouse's rows are read through Sluice as
-- ch.table, with FINAL WHERE _sluice_is_deleted = 0. include/wait.sql polls
-- until the background flows are where the file expects.
--
-- peer_db is the source database, ch_db the ClickHouse database.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');
SELECT name, type, host, database, "user" FROM peers ORDER BY name;
EXECUTE src($$
    CREATE TABLE orders (id bigint PRIMARY KEY, item text, price numeric(12,2), big text);
    ALTER TABLE orders ALTER COLUMN big SET STORAGE EXTERNAL;
    INSERT INTO orders SELECT g, 'item ' || g, g * 1.25, repeat(md5(g::text), 100) FROM generate_series(1, 2000) g;
    CREATE TABLE users (tenant_id int NOT NULL, id int PRIMARY KEY, name text);
    INSERT INTO users SELECT g % 3, g, 'user ' || g FROM generate_series(1, 8) g;
$$);
CREATE MIRROR chm FROM src TO ch WITH TABLE MAPPING
    (public.orders:orders, {from: public.users, to: users, order_by: [tenant_id, id]})
    WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''chm'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, destination_table, status, rows_copied, order_by FROM mirror_tables ORDER BY 1;

-- The tables Sluice made, read from ClickHouse's own catalog.
SELECT name, engine, sorting_key FROM ch.system.tables WHERE database = currentDatabase() ORDER BY name;
SELECT tenant_id, id, name, _sluice_is_deleted FROM ch.users FINAL ORDER BY id;

-- What each side holds: a digest of the current rows of orders, read from
-- the source and from ClickHouse. include/same.sql compares them.
\set src_digest 'SELECT count(*) || '':'' || sum(id) || '':'' || sum(length(item)) || '':'' || sum(length(big)) || '':'' || sum(price * 100)::bigint AS s FROM src.public.orders'
\set dst_digest 'SELECT concat(toString(count()), '':'', toString(sum(id)), '':'', toString(sum(length(item))), '':'', toString(sum(length(big))), '':'', toString(sum(toInt64(price * 100)))) AS d FROM ch.orders FINAL WHERE _sluice_is_deleted = 0'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows, :'d' AS digest;

-- Changes: an update that leaves the TOASTed column out, a key change,
-- deletes, an insert.
EXECUTE src($$
    UPDATE orders SET price = price + 1 WHERE id <= 100;
    UPDATE orders SET id = 6000 WHERE id = 200;
    DELETE FROM orders WHERE id BETWEEN 300 AND 309;
    INSERT INTO orders VALUES (5000, 'new', 9.99, 'small');
    UPDATE users SET name = 'renamed' WHERE id = 1;
    DELETE FROM users WHERE id = 2;
$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows, :'d' AS digest;
-- A delete keeps the key and the last values, marked deleted; so does the
-- old key of a key change.
SELECT id, item, _sluice_is_deleted FROM ch.orders FINAL WHERE id IN (200, 305, 6000) ORDER BY id;
\set wait_for 'SELECT count() = 1 AS done FROM ch.users FINAL WHERE name = ''renamed'''
\ir include/wait.sql
\set ECHO all
SELECT tenant_id, id, name, _sluice_is_deleted FROM ch.users FINAL ORDER BY id;

-- Re-sort a table: a new sorting key, remembered by the mirror.
RESYNC TABLE chm.public.users WITH (strategy = 'swap', order_by = 'id');
EXECUTE src($$UPDATE users SET name = 'during the resync' WHERE id = 3$$);
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.users'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, resync_status, resync_strategy, order_by FROM mirror_tables ORDER BY 1;
SELECT name, sorting_key FROM ch.system.tables WHERE database = currentDatabase() ORDER BY name;
\set wait_for 'SELECT count() = 1 AS done FROM ch.users FINAL WHERE name = ''during the resync'''
\ir include/wait.sql
\set ECHO all
SELECT tenant_id, id, name, _sluice_is_deleted FROM ch.users FINAL ORDER BY id;
-- A sorting key must hold the primary key and name existing columns; a bad
-- one is refused, and nothing changes. (A nullable column may be in it:
-- executor/clickhouse_nullkey_test.go.)
RESYNC TABLE chm.public.users WITH (order_by = 'tenant_id');
RESYNC TABLE chm.public.users WITH (order_by = 'nosuch,id');
SELECT source_table, resync_status, order_by FROM mirror_tables ORDER BY 1;

-- The whole mirror: a new slot, every table loaded into a _resync table,
-- the deleted rows carried over, one swap.
RESYNC MIRROR chm;
EXECUTE src($$UPDATE orders SET item = 'during the full resync' WHERE id BETWEEN 20 AND 29$$);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''chm'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows, :'d' AS digest;
SELECT id, item, _sluice_is_deleted FROM ch.orders FINAL WHERE id IN (25, 200, 305) ORDER BY id;
SELECT name, sorting_key FROM ch.system.tables WHERE database = currentDatabase() ORDER BY name;
SELECT message FROM mirror_events WHERE mirror = 'chm' AND kind = 'phase' ORDER BY at;

-- A column added on the source is added on ClickHouse, where the rows
-- already there read the source's default; the mirror keeps running.
EXECUTE src($$ALTER TABLE users ADD COLUMN loyalty int DEFAULT 5; INSERT INTO users VALUES (1, 9, 'loyal', 7)$$);
\set wait_for 'SELECT count() = 1 AS done FROM ch.users FINAL WHERE id = 9'
\ir include/wait.sql
\set ECHO all
SELECT id, name, loyalty FROM ch.users FINAL WHERE _sluice_is_deleted = 0 ORDER BY id;
SELECT name, status, error FROM mirrors;
SELECT message FROM mirror_events WHERE mirror = 'chm' AND kind = 'schema' ORDER BY at;

DROP MIRROR chm;
DROP PEER ch;
DROP PEER src;
