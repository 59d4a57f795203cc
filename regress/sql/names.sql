--
-- names: schemas and tables whose names hold dots, double quotes, spaces,
-- upper case and non-ASCII letters, mirrored into Postgres and into
-- ClickHouse: the initial load, changes, RESYNC TABLE (swap and truncate)
-- and RESYNC MIRROR. Status tables show each name as quote_ident renders
-- it, one part at a time, so a dot inside a name is never mistaken for the
-- one between schema and table.
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
    CREATE SCHEMA "sch.ema";
    CREATE TABLE "sch.ema".t1 (id int PRIMARY KEY, v text);
    CREATE TABLE "sch.ema"."Upper.Dot" (id int PRIMARY KEY, "Val.Ue" text);
    CREATE TABLE public."we""ird" (id int PRIMARY KEY, "q""c" text);
    CREATE TABLE public."spa ce" ("i d" int PRIMARY KEY, v text);
    CREATE TABLE public."Ünï" (id int PRIMARY KEY, "ç" text);
    CREATE TABLE public.plain (id int PRIMARY KEY, v text);
    INSERT INTO "sch.ema".t1 SELECT g, 't1 ' || g FROM generate_series(1, 300) g;
    INSERT INTO "sch.ema"."Upper.Dot" SELECT g, 'ud ' || g FROM generate_series(1, 300) g;
    INSERT INTO public."we""ird" SELECT g, 'we ' || g FROM generate_series(1, 300) g;
    INSERT INTO public."spa ce" SELECT g, 'sp ' || g FROM generate_series(1, 300) g;
    INSERT INTO public."Ünï" SELECT g, 'ün ' || g FROM generate_series(1, 300) g;
    INSERT INTO public.plain SELECT g, 'plain ' || g FROM generate_series(1, 300) g;
$$);

-- Into Postgres, under the same names.
CREATE MIRROR dot FROM src TO dst WITH TABLE MAPPING ("sch.ema".t1:"sch.ema".t1,
    "sch.ema"."Upper.Dot":"sch.ema"."Upper.Dot", "we""ird":"we""ird", "spa ce":"spa ce",
    "Ünï":"Ünï", plain:plain) WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''dot'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, error FROM mirrors;
SELECT source_table, destination_table, status, rows_copied FROM mirror_tables WHERE mirror = 'dot' ORDER BY 1;

-- What each side holds: a digest of every row of every table, read from
-- each peer. include/same.sql compares them.
\set rows_from 'FROM (SELECT ''a'' || id || '':'' || v AS r FROM "sch.ema".t1 UNION ALL SELECT ''b'' || id || '':'' || "Val.Ue" FROM "sch.ema"."Upper.Dot" UNION ALL SELECT ''c'' || id || '':'' || "q""c" FROM "we""ird" UNION ALL SELECT ''d'' || "i d" || '':'' || v FROM "spa ce" UNION ALL SELECT ''e'' || id || '':'' || "ç" FROM "Ünï" UNION ALL SELECT ''f'' || id || '':'' || v FROM plain) x'
\set src_digest 'EXECUTE src($q$SELECT md5(string_agg(r, '','' ORDER BY r)) AS s ' :rows_from '$q$)'
\set dst_digest 'EXECUTE dst($q$SELECT md5(string_agg(r, '','' ORDER BY r)) AS d ' :rows_from '$q$)'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;

-- Changes to every table.
EXECUTE src($$
    INSERT INTO "sch.ema".t1 VALUES (1001, 'new');
    UPDATE "sch.ema"."Upper.Dot" SET "Val.Ue" = 'changed' WHERE id <= 10;
    DELETE FROM public."we""ird" WHERE id BETWEEN 20 AND 29;
    UPDATE public."spa ce" SET "i d" = 5000 WHERE "i d" = 1;
    INSERT INTO public."Ünï" VALUES (1001, 'ñéw');
    DELETE FROM public.plain WHERE id = 1;
$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
-- The counters are recorded in the catalog just after the destination
-- commits the changes, so wait for them too.
\set wait_for 'SELECT sum(inserts + updates + deletes) = 24 AS done FROM mirror_tables WHERE mirror = ''dot'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, inserts, updates, deletes FROM mirror_tables WHERE mirror = 'dot' ORDER BY 1;
-- Reading through Sluice by peer name, with the names quoted.
SELECT id, "Val.Ue" FROM dst."sch.ema"."Upper.Dot" WHERE id IN (1, 11) ORDER BY id;
SELECT count(*) FROM dst.public."we""ird";
SELECT "i d", v FROM src.public."spa ce" WHERE "i d" = 5000;

-- RESYNC TABLE names the table as mirror_tables shows it, or any quoting
-- Postgres would read the same way.
EXECUTE dst($$UPDATE "sch.ema"."Upper.Dot" SET "Val.Ue" = 'drifted'; DELETE FROM "we""ird" WHERE id <= 5$$);
RESYNC TABLE dot."sch.ema"."Upper.Dot" WITH (strategy = 'swap');
EXECUTE src($$UPDATE "sch.ema"."Upper.Dot" SET "Val.Ue" = 'during the swap' WHERE id = 300$$);
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''"sch.ema"."Upper.Dot"'''
\ir include/wait.sql
\set ECHO all
RESYNC TABLE dot.public."we""ird" WITH (strategy = 'truncate');
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE source_table = ''public."we""ird"'''
\ir include/wait.sql
\set ECHO all
SELECT source_table, resync_status, resync_strategy, resync_error FROM mirror_tables WHERE mirror = 'dot' ORDER BY 1;
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
RESYNC TABLE dot."sch.ema".nosuch;

-- The whole mirror.
EXECUTE dst($$UPDATE "spa ce" SET v = 'drifted'$$);
RESYNC MIRROR dot;
EXECUTE src($$INSERT INTO "Ünï" VALUES (2001, 'during the full resync')$$);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''dot'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT name, status, error FROM mirrors;
EXECUTE dst($$SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname IN ('public', 'sch.ema') ORDER BY 1, 2$$);

-- Into ClickHouse: the destination schema is the ClickHouse database.
CREATE MIRROR dotch FROM src TO ch WITH TABLE MAPPING ("sch.ema".t1:t1,
    "sch.ema"."Upper.Dot":"Upper.Dot", "we""ird":"we""ird", "spa ce":"spa ce",
    "Ünï":"Ünï", plain:plain) WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''dotch'''
\ir include/wait.sql
\set ECHO all
SELECT name, status, error FROM mirrors WHERE name = 'dotch';
SELECT destination_table, source_table, status, rows_copied
FROM mirror_tables WHERE mirror = 'dotch' ORDER BY 2;
\set chrows 'SELECT arrayStringConcat(arraySort(groupArray(r)), '','') AS d FROM (SELECT concat(''a'', toString(id), '':'', v) AS r FROM t1 FINAL WHERE _sluice_is_deleted = 0 UNION ALL SELECT concat(''b'', toString(id), '':'', `Val.Ue`) AS r FROM `Upper.Dot` FINAL WHERE _sluice_is_deleted = 0 UNION ALL SELECT concat(''c'', toString(id), '':'', `q"c`) AS r FROM `we"ird` FINAL WHERE _sluice_is_deleted = 0 UNION ALL SELECT concat(''d'', toString(`i d`), '':'', v) AS r FROM `spa ce` FINAL WHERE _sluice_is_deleted = 0 UNION ALL SELECT concat(''e'', toString(id), '':'', `ç`) AS r FROM `Ünï` FINAL WHERE _sluice_is_deleted = 0 UNION ALL SELECT concat(''f'', toString(id), '':'', v) AS r FROM plain FINAL WHERE _sluice_is_deleted = 0)'
\set srcrows 'SELECT string_agg(r, '','' ORDER BY r COLLATE "C") AS s FROM (SELECT ''a'' || id || '':'' || v AS r FROM "sch.ema".t1 UNION ALL SELECT ''b'' || id || '':'' || "Val.Ue" FROM "sch.ema"."Upper.Dot" UNION ALL SELECT ''c'' || id || '':'' || "q""c" FROM "we""ird" UNION ALL SELECT ''d'' || "i d" || '':'' || v FROM "spa ce" UNION ALL SELECT ''e'' || id || '':'' || "ç" FROM "Ünï" UNION ALL SELECT ''f'' || id || '':'' || v FROM plain) x'
\set src_digest 'EXECUTE src($q$SELECT md5(s) AS s FROM (' :srcrows ') y$q$)'
\set dst_digest 'EXECUTE ch($q$SELECT lower(hex(MD5(d))) AS d FROM (' :chrows ')$q$)'
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT id, "Val.Ue" FROM ch."Upper.Dot" FINAL WHERE id IN (1, 11) ORDER BY id;
SELECT count() FROM ch."we""ird" FINAL WHERE _sluice_is_deleted = 0;
EXECUTE src($$
    INSERT INTO "sch.ema".t1 VALUES (3001, 'to ch');
    UPDATE "sch.ema"."Upper.Dot" SET "Val.Ue" = 'changed for ch' WHERE id <= 3;
    DELETE FROM public."we""ird" WHERE id = 100;
    UPDATE public."Ünï" SET "ç" = 'ça' WHERE id = 2;
$$);
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
RESYNC TABLE dotch."sch.ema"."Upper.Dot" WITH (strategy = 'swap');
\set wait_for 'SELECT resync_status = ''done'' AS done FROM mirror_tables WHERE mirror = ''dotch'' AND source_table = ''"sch.ema"."Upper.Dot"'''
\ir include/wait.sql
\set ECHO all
RESYNC MIRROR dotch;
EXECUTE src($$UPDATE "spa ce" SET v = 'during the ch resync' WHERE "i d" = 7$$);
\set wait_for 'SELECT status = ''RUNNING'' AND NOT resyncing AS done FROM mirrors WHERE name = ''dotch'''
\ir include/wait.sql
\set ECHO all
\set wait_probe same.sql
\ir include/wait.sql
\set ECHO all
\unset wait_probe
SELECT :'s' = :'d' AS same_rows;
SELECT source_table, status, resync_status, resync_error FROM mirror_tables WHERE mirror = 'dotch' ORDER BY 1;
SELECT name, status, error FROM mirrors ORDER BY name;
EXECUTE ch($$SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name$$);

DROP MIRROR dotch WITH (drop_destination_tables = true);
DROP MIRROR dot;
DROP PEER ch;
DROP PEER dst;
DROP PEER src;
