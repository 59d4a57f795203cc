--
-- mirror_refused: a CREATE MIRROR that is refused leaves no trace but its
-- error: no mirror, no event in mirror_events, no publication, slot or
-- destination table. Some refusals come from checks made before anything
-- is written, others from the destination while it is being prepared.
--
-- peer_db is the source database, peer_db2 the Postgres destination,
-- ch_db the ClickHouse one.
\set VERBOSITY verbose
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text, deleted boolean, tags text[] NOT NULL);
    CREATE TABLE nokey (v text);
$$);

-- Refused before anything is made: a missing table, no primary key, a bad
-- option.
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (public.missing:public.missing);
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (public.nokey:public.nokey);
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (users:users) WITH (max_batch_size = 0);
-- Refused by the destination: the soft-delete column is a column of the
-- table; ClickHouse cannot sort by an array.
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (users:users) WITH (soft_delete_col_name = 'deleted');
CREATE MIRROR x FROM src TO ch WITH TABLE MAPPING (users:users) WITH (soft_delete_col_name = 'deleted');
CREATE MIRROR x FROM src TO ch WITH TABLE MAPPING ({from: users, to: users, order_by: [id, tags]});
-- Refused while the destination is prepared, after the mirror was stored:
-- Postgres does not let the peer's user create a table in pg_catalog. What
-- was made is undone, the mirror's row and its events with it.
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (users:pg_catalog.users);

-- No trace.
SELECT count(*) AS mirrors FROM mirrors WHERE name = 'x';
SELECT count(*) AS events FROM mirror_events WHERE mirror = 'x';
EXECUTE src('SELECT (SELECT count(*) FROM pg_publication) AS publications, (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) AS slots');
EXECUTE dst($$SELECT count(*) AS tables FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', '_sluice')$$);
EXECUTE ch('SELECT count() AS tables FROM system.tables WHERE database = currentDatabase() AND name = ''users''');

-- The name is free: the same statement, corrected, makes the mirror, whose
-- history starts with its creation.
CREATE MIRROR x FROM src TO dst WITH TABLE MAPPING (users:users) WITH (soft_delete_col_name = 'is_deleted');
SELECT kind, message FROM mirror_events WHERE mirror = 'x' ORDER BY at LIMIT 1;
SELECT count(*) AS events FROM mirror_events WHERE mirror = 'x' AND kind = 'dropped';
DROP MIRROR x;
