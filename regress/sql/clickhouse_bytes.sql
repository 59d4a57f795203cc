-- clickhouse_bytes: what psql sees of bytes and NULLs a mirror put in
-- ClickHouse. A bytea column reads back through Sluice as bytea (\x hex,
-- equal to the source); another String holding bytes that are not UTF-8 is
-- refused with 22021 naming the column, never sent. A column nullable on
-- the source may be in order_by: a NOTICE says how, and a NULL (load or
-- CDC) is stored as the type's default and reported in mirror_events.
--
-- peer_db is the source database, ch_db the ClickHouse database.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');
EXECUTE src($$
    CREATE TABLE files (id int PRIMARY KEY, thumbnail bytea, grp int);
    INSERT INTO files VALUES (1, '\x0080ff', 1), (2, NULL, 1), (3, '\x', NULL), (4, 'plain', 2);
$$);
CREATE MIRROR mbytes FROM src TO ch WITH TABLE MAPPING
    ({from: public.files, to: files, order_by: [grp, id]});
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''mbytes'''
\ir include/wait.sql
\set ECHO all
EXECUTE src($$INSERT INTO files VALUES (5, '\xff00', NULL); UPDATE files SET thumbnail = '\x80' WHERE id = 4$$);
\set wait_for 'SELECT count() = 5 AND countIf(thumbnail = unhex(''80'')) = 1 AS done FROM ch.files FINAL WHERE _sluice_is_deleted = 0'
\ir include/wait.sql
\set ECHO all

-- The same bytes on both sides; the NULL grp is 0 in ClickHouse.
SELECT id, thumbnail, grp FROM src.public.files ORDER BY id;
SELECT id, thumbnail, grp FROM ch.files FINAL WHERE _sluice_is_deleted = 0 ORDER BY id;
SELECT name, type, comment FROM ch.system.columns WHERE database = currentDatabase() AND "table" = 'files' AND name IN ('thumbnail', 'grp') ORDER BY name;
\set wait_for 'SELECT count(*) = 2 AS done FROM mirror_events WHERE mirror = ''mbytes'' AND kind = ''warning'''
\ir include/wait.sql
\set ECHO all
SELECT message FROM mirror_events WHERE mirror = 'mbytes' AND kind = 'warning' ORDER BY at;

-- A String that was not made from bytea: its text must be UTF-8 (22021).
\set VERBOSITY verbose
EXECUTE ch($$CREATE TABLE raw (id Int32, s String) ENGINE = MergeTree ORDER BY id$$);
EXECUTE ch($$INSERT INTO raw SELECT 1, unhex('41ff42')$$);
SELECT id, s FROM ch.raw;
SELECT id, hex(s) FROM ch.raw;

DROP MIRROR mbytes;
DROP PEER ch;
DROP PEER src;
