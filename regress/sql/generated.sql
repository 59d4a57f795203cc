--
-- generated: a source table with generated columns. Logical replication
-- does not send their values, so a Postgres destination computes them
-- itself: it gets the same columns with the same expressions, through the
-- initial load, changes and every kind of resync. A ClickHouse destination
-- does not get them, and CREATE MIRROR says so for each column.
--
-- peer_db is the source database, peer_db2 the Postgres destination, ch_db
-- the ClickHouse database.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');
EXECUTE src($$
    CREATE TABLE items (
        id int PRIMARY KEY,
        g int GENERATED ALWAYS AS (id * 2) STORED,
        name text,
        "Label" text GENERATED ALWAYS AS (upper(name) || '#' || id) STORED NOT NULL,
        price numeric(10,2)
    );
    INSERT INTO items (id, name, price) SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 1000) i;
$$);

-- Into Postgres: the same columns, in the same order, with the same
-- expressions.
CREATE MIRROR gm FROM src TO dst WITH TABLE MAPPING (items:items) WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''gm'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, error FROM mirrors;
\set columns 'SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS expression FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = ''public.items''::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum'
EXECUTE src(:'columns');
EXECUTE dst(:'columns');

-- Every row, generated columns included, read from each side.
\set rows 'SELECT md5(string_agg(id || '':'' || g || '':'' || coalesce(name, ''-'') || '':'' || "Label" || '':'' || coalesce(price::text, ''-''), '','' ORDER BY id))'
\set src_digest 'EXECUTE src($q$' :rows ' AS s FROM items$q$)'
\set dst_digest 'EXECUTE dst($q$' :rows ' AS d FROM items$q$)'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;

-- Changes: the destination computes the new values.
EXECUTE src($$
    INSERT INTO items (id, name, price) VALUES (1001, 'new', 1);
    UPDATE items SET name = 'renamed' WHERE id <= 10;
    UPDATE items SET id = id + 5000 WHERE id BETWEEN 11 AND 15;
    DELETE FROM items WHERE id BETWEEN 20 AND 29;
$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
EXECUTE dst($$SELECT id, g, name, "Label" FROM items WHERE id IN (1, 1001, 5011) ORDER BY id$$);

-- Each kind of resync keeps the generated columns.
RESYNC TABLE gm.items WITH (strategy = 'swap');
EXECUTE src($$UPDATE items SET name = 'during the swap' WHERE id = 100$$);
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public.items'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
EXECUTE dst(:'columns');
RESYNC TABLE gm.items WITH (strategy = 'truncate');
EXECUTE src($$UPDATE items SET name = 'during the truncate' WHERE id = 200$$);
\set wait_for 'SELECT resync_status = ''done'' AND resync_strategy = ''truncate'' AS done FROM mirror_tables WHERE source_table = ''public.items'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
EXECUTE dst(:'columns');
RESYNC MIRROR gm;
EXECUTE src($$INSERT INTO items (id, name) VALUES (2001, 'during the full resync')$$);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''gm'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
EXECUTE dst(:'columns');
SELECT name, status, error FROM mirrors;
-- A generated column cannot lose the column it is computed from.
CREATE MIRROR gx FROM src TO dst WITH TABLE MAPPING ({from: items, to: items2, exclude: [name]});
DROP MIRROR gm;

-- Into ClickHouse: the generated columns are left out, and CREATE MIRROR
-- says so for each.
CREATE MIRROR gch FROM src TO ch WITH TABLE MAPPING (items:items) WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''gch'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, error FROM mirrors;
EXECUTE ch($$SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'items' ORDER BY name$$);
\set src_digest 'EXECUTE src($q$SELECT count(*) || '':'' || sum(id) || '':'' || sum(length(name)) AS s FROM items$q$)'
\set dst_digest 'EXECUTE ch($q$SELECT concat(toString(count()), '':'', toString(sum(id)), '':'', toString(sum(length(name)))) AS d FROM items FINAL WHERE _sluice_is_deleted = 0$q$)'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
DROP MIRROR gch WITH (drop_destination_tables = true);
DROP PEER ch;
DROP PEER dst;
DROP PEER src;
