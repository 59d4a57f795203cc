--
-- peerwrite: writes on peer-qualified names run on that Postgres peer, as
-- PeerDB forwards them (its nexus postgres.sql runs these statements).
--
-- INSERT, UPDATE, DELETE, MERGE, CREATE TABLE [AS], CREATE INDEX, ALTER
-- TABLE, TRUNCATE, DROP TABLE and DROP INDEX naming peer.schema.table run
-- on that peer's read-write connection with the peer part removed; the
-- client gets the peer's command tag, rows, notices and errors. A SELECT
-- by peer name stays read-only.
\set VERBOSITY verbose

CREATE PEER pg_test FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER other FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');

-- PeerDB's own script, unchanged.
CREATE TABLE IF NOT EXISTS pg_test.PUBLIC.TEMP_TABLE(INT4 INT4, BOOL BOOL, INT8 INT8 PRIMARY KEY);
INSERT INTO pg_test.PUBLIC.TEMP_TABLE VALUES(17, true, 26);
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
UPDATE pg_test.PUBLIC.TEMP_TABLE SET INT4 = INT4 + 7 WHERE INT8 = 24;
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
UPDATE pg_test.PUBLIC.TEMP_TABLE SET INT4 = INT4 + 7 WHERE INT8 = 26;
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
DELETE FROM pg_test.PUBLIC.TEMP_TABLE WHERE INT4 = 26;
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
DELETE FROM pg_test.PUBLIC.TEMP_TABLE WHERE INT4 = 24;
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
INSERT INTO pg_test.PUBLIC.TEMP_TABLE VALUES(1, true, 1);
SELECT * FROM pg_test.PUBLIC.TEMP_TABLE;
TRUNCATE TABLE pg_test.PUBLIC.TEMP_TABLE;
DROP TABLE pg_test.PUBLIC.TEMP_TABLE;

-- The peer's notices: the table exists, or does not.
CREATE TABLE pg_test.public.t (id int PRIMARY KEY, v text NOT NULL);
CREATE TABLE IF NOT EXISTS pg_test.public.t (id int);
DROP TABLE IF EXISTS pg_test.public.nosuch;

-- Tags and row counts (shown here), RETURNING rows, a WITH query, INSERT
-- ... SELECT from the same peer, ON CONFLICT.
\set QUIET off
INSERT INTO pg_test.public.t SELECT g, 'row ' || g FROM generate_series(1, 5) g;
INSERT INTO pg_test.public.t VALUES (6, 'six'), (7, 'seven') RETURNING id, upper(v) AS v;
WITH n AS (SELECT 8 AS id) INSERT INTO pg_test.public.t SELECT id, 'eight' FROM n;
INSERT INTO pg_test.public.t VALUES (1, 'one') ON CONFLICT (id) DO UPDATE SET v = excluded.v RETURNING *;
UPDATE pg_test.public.t SET v = v || '!' WHERE id > 5 RETURNING id, v;
DELETE FROM pg_test.public.t t WHERE t.id = 8 RETURNING t.*;
MERGE INTO pg_test.public.t t USING (VALUES (2, 'two'), (9, 'nine')) AS s(id, v) ON t.id = s.id
    WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v);
\set QUIET on
SELECT * FROM pg_test.public.t ORDER BY id;

-- DDL: CREATE TABLE AS, CREATE INDEX, ALTER TABLE, DROP INDEX, DROP TABLE.
CREATE TABLE pg_test.public.t_copy AS SELECT * FROM pg_test.public.t WHERE id < 3;
CREATE INDEX t_v ON pg_test.public.t (v);
ALTER TABLE pg_test.public.t ADD COLUMN n int DEFAULT 0;
ALTER TABLE pg_test.public.t_copy RENAME TO t_old;
EXECUTE pg_test($$SELECT relname, relkind FROM pg_class WHERE relname IN ('t', 't_v', 't_old') ORDER BY 1$$);
\set QUIET off
DROP INDEX pg_test.public.t_v;
DROP TABLE pg_test.public.t_old, pg_test . "public" . "t_gone";
DROP TABLE IF EXISTS pg_test.public.t_old, pg_test . "public" . "t_gone";
\set QUIET on
EXECUTE pg_test($$SELECT relname, relkind FROM pg_class WHERE relname IN ('t', 't_v', 't_old') ORDER BY 1$$);

-- The peer's errors, with their fields, pointing into the statement as
-- written.
INSERT INTO pg_test.public.t VALUES (1, 'again');
INSERT INTO pg_test.public.t (id, nosuch) VALUES (10, 'x');
UPDATE pg_test.public.t SET v = NULL WHERE id = 1;
INSERT INTO pg_test.public.missing VALUES (1);

-- A SELECT by peer name stays read-only.
SELECT current_setting('transaction_read_only') AS read_only FROM pg_test.public.t LIMIT 1;
\set VERBOSITY sqlstate
WITH gone AS (DELETE FROM pg_test.public.t RETURNING id) SELECT count(*) FROM gone;
SELECT id INTO pg_test.public.made FROM pg_test.public.t;
\set VERBOSITY verbose

-- Refused: two peers, a table not named on the peer, a ClickHouse peer,
-- an unknown peer, statements of other kinds.
INSERT INTO pg_test.public.t SELECT * FROM other.public.t;
INSERT INTO pg_test.public.t (id, v) SELECT 100, name FROM peers;
UPDATE pg_test.public.t SET v = 'x' FROM public.elsewhere e WHERE e.id = t.id;
DROP TABLE pg_test.public.t, public.t;
INSERT INTO ch.orders VALUES (1);
DELETE FROM nosuch.public.t;
CREATE VIEW pg_test.public.v AS SELECT 1 AS one;

-- Inside a transaction block a write commits on its own on the peer, and
-- says so; after an error in the block it is refused.
BEGIN;
INSERT INTO pg_test.public.t VALUES (20, 'in a block');
ROLLBACK;
SELECT id, v FROM pg_test.public.t WHERE id = 20;
BEGIN;
SELECT 1/0;
DELETE FROM pg_test.public.t WHERE id = 20;
ROLLBACK;
SELECT count(*) FROM pg_test.public.t WHERE id = 20;

DROP PEER pg_test;
DROP PEER other;
DROP PEER ch;
