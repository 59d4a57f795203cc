--
-- session: what psql and drivers send besides Sluice's own statements:
-- settings, version checks, transactions, prepared statements, cursors and
-- psql's meta-commands. These run on Sluice's catalog, which is read-only.
--
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);
EXECUTE src('CREATE TABLE events (id int PRIMARY KEY, at timestamptz, day date)');
EXECUTE src($$INSERT INTO events VALUES (1, '2024-01-02 03:04:05+00', '2024-02-29')$$);

--
-- Version checks, as drivers and tools make them. version() names the
-- build (compiler, distribution), so only its shape is shown.
--
SELECT version() LIKE 'PostgreSQL %' AS looks_like_postgres;
SELECT split_part(current_setting('server_version'), ' ', 1) AS server_version;
SELECT current_setting('server_version_num')::int >= 120000 AS at_least_12;

--
-- Settings: the client's start-up settings (PGTZ=UTC here) apply.
--
SHOW TimeZone;
SHOW DateStyle;
SHOW client_encoding;
SHOW standard_conforming_strings;
SHOW integer_datetimes;
SELECT current_setting('TimeZone') AS tz, current_setting('application_name') AS app;

-- SET, SHOW, RESET.
SET DateStyle = 'German';
SHOW DateStyle;
SELECT date '2024-02-29' AS leap_day;
RESET DateStyle;
SHOW DateStyle;
SET application_name = 'regress app';
SHOW application_name;
RESET application_name;
-- What JDBC and other drivers send at start.
SET extra_float_digits = 3;
SELECT 0.1::float8 AS tenth;
RESET extra_float_digits;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
SELECT set_config('statement_timeout', '5s', false) AS statement_timeout;
RESET ALL;
SHOW statement_timeout;
DISCARD ALL;
-- The status views are still found after RESET ALL and DISCARD ALL.
SELECT count(*) AS peers FROM peers;

-- Errors: an unknown setting (42704), a bad value (22023), SET LOCAL
-- outside a transaction block (a warning, 25P01).
SET no_such_setting = 1;
SET DateStyle = 'Martian';
SET LOCAL DateStyle = 'SQL';
SHOW DateStyle;

-- The session's settings apply to what peers return too: a federated
-- query shows times in the session's time zone.
SET TIME ZONE 'Asia/Kolkata';
SELECT at FROM src.public.events;
SET DateStyle = 'SQL, DMY';
SELECT day FROM src.public.events;
RESET ALL;
SELECT at, day FROM src.public.events;

--
-- Transactions
--
BEGIN;
SELECT count(*) AS peers FROM peers;
COMMIT;
START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY;
SHOW transaction_isolation;
ROLLBACK;
-- A federated query inside a transaction block reads the peer directly
-- (it is not part of the transaction).
BEGIN;
SELECT count(*) AS events FROM src.public.events;
COMMIT;
-- COMMIT and ROLLBACK outside a transaction block warn (25P01).
COMMIT;
ROLLBACK;

-- Sluice's own statements act on the world and cannot be rolled back, so
-- they are refused inside a transaction block (25001). Like any error, that
-- aborts the transaction: what follows is refused (25P02) until ROLLBACK.
BEGIN;
CREATE PEER in_tx FROM POSTGRES WITH (host = 'h', user = 'u', database = 'd');
SELECT 1 AS after_error;
ROLLBACK;
BEGIN;
DROP PEER IF EXISTS src;
ROLLBACK;
BEGIN;
EXECUTE src('SELECT 1');
ROLLBACK;
BEGIN;
PAUSE MIRROR m;
ROLLBACK;
-- src was not dropped.
SELECT name FROM peers;

-- A failed transaction block: every statement is refused (25P02), ours
-- and federated ones too, until it ends; COMMIT then rolls back.
BEGIN;
SELECT 1/0;
SELECT 1 AS refused;
SELECT count(*) FROM src.public.events;
CREATE PEER in_failed_tx FROM POSTGRES WITH (host = 'h', user = 'u', database = 'd');
EXECUTE src('SELECT 1');
COMMIT;
SELECT 'usable again' AS status;

--
-- Prepared statements and cursors (SQL level).
--
PREPARE count_peers AS SELECT count(*) FROM peers;
EXECUTE count_peers;
DEALLOCATE count_peers;
PREPARE add_one(int) AS SELECT $1 + 1 AS sum;
EXECUTE add_one(41);
-- EXECUTE name('text') has the shape of EXECUTE peer('sql'): with no peer
-- of that name it is the prepared statement.
PREPARE greet(text) AS SELECT 'hello ' || $1 AS greeting;
EXECUTE greet('world');
-- That holds inside a transaction block too: it is not a peer statement.
BEGIN;
EXECUTE greet('transaction');
COMMIT;
DEALLOCATE ALL;
BEGIN;
DECLARE c CURSOR FOR SELECT name FROM peers ORDER BY name;
FETCH 1 FROM c;
CLOSE c;
COMMIT;

--
-- The catalog is read-only (25006): it changes only through Sluice's own
-- statements.
--
CREATE TABLE t (a int);
CREATE VIEW v AS SELECT 1 AS a;
INSERT INTO peers (name) VALUES ('x');
UPDATE peers SET host = 'elsewhere';
DELETE FROM peers;
DROP VIEW peers;
-- A SELECT that writes is refused too, and so is every way out of
-- read-only mode: BEGIN READ WRITE and SET or RESET of
-- default_transaction_read_only. Only the SQLSTATE is shown for these.
\set VERBOSITY sqlstate
SELECT 1 AS a INTO t;
BEGIN READ WRITE;
WITH gone AS (DELETE FROM peers RETURNING name) SELECT count(*) FROM gone;
ROLLBACK;
BEGIN READ WRITE;
SELECT 1 AS a INTO t;
ROLLBACK;
SET default_transaction_read_only = off;
WITH gone AS (DELETE FROM peers RETURNING name) SELECT count(*) FROM gone;
RESET default_transaction_read_only;
\set VERBOSITY verbose
-- src is still there.
SELECT name FROM peers;

--
-- psql's meta-commands query the catalog: the status views are in schema
-- sluice_status, on the search path.
--
\dv
\d peers
SELECT name, port, created_at FROM peers \gdesc
