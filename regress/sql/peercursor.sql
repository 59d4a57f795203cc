--
-- peercursor: cursors over a query naming a Postgres peer.
--
-- DECLARE ... FOR SELECT ... FROM peer.schema.table declares the cursor on
-- the session's read-only connection to the peer, in a transaction tied to
-- the session's transaction block; FETCH, MOVE and CLOSE run there. This is
-- what psycopg2's named cursors send.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER ch FROM CLICKHOUSE WITH (host = '127.0.0.1', port = :ch_port, user = 'default',
    password = '', database = :'ch_db');
EXECUTE src($$
    CREATE TABLE t (id int PRIMARY KEY, v text);
    INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 10) g;
$$);

-- psycopg2's named cursor, as it sends it.
\set QUIET off
BEGIN;
DECLARE "c" CURSOR WITHOUT HOLD FOR SELECT * FROM src.public.t ORDER BY id LIMIT 5;
FETCH FORWARD 2 FROM "c";
FETCH FORWARD 2 FROM "c";
FETCH FORWARD 2 FROM "c";
FETCH FORWARD 2 FROM "c";
CLOSE "c";
COMMIT;
\set QUIET on

-- psql's FETCH_COUNT reads a query's rows through a cursor too.
\set FETCH_COUNT 4
SELECT id, v FROM src.public.t WHERE id <= 6 ORDER BY id;
\unset FETCH_COUNT

-- Every direction of a SCROLL cursor, and MOVE.
BEGIN;
DECLARE s SCROLL CURSOR FOR SELECT id, v FROM src.public.t WHERE id <= 6 ORDER BY id;
FETCH LAST FROM s;
FETCH PRIOR FROM s;
FETCH ABSOLUTE 2 FROM s;
FETCH RELATIVE 2 FROM s;
FETCH BACKWARD 2 FROM s;
\set QUIET off
MOVE FIRST IN s;
MOVE FORWARD ALL IN s;
\set QUIET on
FETCH BACKWARD ALL FROM s;
-- A read by peer name in the block runs in the peer's transaction, which
-- has the block's isolation level.
SELECT count(*), current_setting('transaction_isolation') AS isolation FROM src.public.t;
COMMIT;
BEGIN ISOLATION LEVEL REPEATABLE READ;
DECLARE rr CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
SELECT current_setting('transaction_isolation') AS isolation, now() = statement_timestamp() AS own_transaction
    FROM src.public.t LIMIT 1;
COMMIT;
-- A WITHOUT HOLD cursor closed at COMMIT.
FETCH 1 FROM s;

-- A cursor over the catalog and one over a peer, side by side; a name is
-- taken across both; CLOSE ALL closes both.
BEGIN;
DECLARE cat CURSOR FOR SELECT name, type FROM peers ORDER BY name;
DECLARE p CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
FETCH 1 FROM cat;
FETCH 1 FROM p;
FETCH 1 FROM cat;
FETCH 1 FROM p;
DECLARE cat CURSOR FOR SELECT id FROM src.public.t;
ROLLBACK;
BEGIN;
DECLARE cat CURSOR FOR SELECT name, type FROM peers ORDER BY name;
DECLARE p CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
DECLARE p CURSOR FOR SELECT 1;
ROLLBACK;
BEGIN;
DECLARE cat CURSOR FOR SELECT name, type FROM peers ORDER BY name;
DECLARE p CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
\set QUIET off
CLOSE ALL;
\set QUIET on
FETCH 1 FROM p;
ROLLBACK;

-- WITH HOLD: declared outside a block too, kept after COMMIT, closed by
-- CLOSE. A cursor declared in a block that rolls back is gone.
DECLARE h CURSOR WITH HOLD FOR SELECT id FROM src.public.t ORDER BY id;
FETCH 2 FROM h;
BEGIN;
DECLARE h2 CURSOR WITH HOLD FOR SELECT id FROM src.public.t ORDER BY id DESC;
FETCH 1 FROM h2;
COMMIT;
FETCH 1 FROM h;
FETCH 1 FROM h2;
BEGIN;
DECLARE h3 CURSOR WITH HOLD FOR SELECT id FROM src.public.t;
ROLLBACK;
FETCH 1 FROM h3;
FETCH 1 FROM h;
CLOSE h;
CLOSE h2;
FETCH 1 FROM h;

-- Savepoints: ROLLBACK TO closes the cursors declared after the
-- savepoint, RELEASE keeps them; an error on the peer is rolled back to
-- the savepoint.
BEGIN;
DECLARE before_sp CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
SAVEPOINT a;
DECLARE after_a CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
SAVEPOINT b;
DECLARE after_b CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
RELEASE SAVEPOINT b;
FETCH 1 FROM after_b;
ROLLBACK TO SAVEPOINT a;
FETCH 1 FROM after_b;
ROLLBACK TO SAVEPOINT a;
FETCH 1 FROM after_a;
ROLLBACK TO SAVEPOINT a;
SELECT 1/(id - 1) FROM src.public.t;
ROLLBACK TO SAVEPOINT a;
FETCH 1 FROM before_sp;
COMMIT;
-- A block whose peer transaction began after the savepoint.
BEGIN;
SAVEPOINT a;
DECLARE late CURSOR FOR SELECT id FROM src.public.t ORDER BY id;
FETCH 1 FROM late;
ROLLBACK TO SAVEPOINT a;
FETCH 1 FROM late;
ROLLBACK TO SAVEPOINT a;
DECLARE late CURSOR FOR SELECT id FROM src.public.t ORDER BY id DESC;
FETCH 1 FROM late;
COMMIT;

-- Errors: WITHOUT HOLD outside a block (the peer's own), the peer's errors
-- with positions, a SELECT that may write, a function off the allow-list,
-- two peers, a ClickHouse peer, a failed block.
DECLARE nohold CURSOR FOR SELECT id FROM src.public.t;
BEGIN;
DECLARE e CURSOR FOR SELECT nosuch FROM src.public.t;
ROLLBACK;
BEGIN;
DECLARE e CURSOR FOR SELECT id FROM src.public.t FOR UPDATE;
ROLLBACK;
BEGIN;
DECLARE e CURSOR FOR SELECT set_config('x.y', 'z', false) FROM src.public.t;
ROLLBACK;
BEGIN;
DECLARE e CURSOR FOR SELECT * FROM ch.t;
ROLLBACK;
BEGIN;
DECLARE e CURSOR FOR SELECT * FROM src.public.t, ch.t;
ROLLBACK;
BEGIN;
DECLARE e NO SCROLL CURSOR FOR SELECT id FROM src.public.t;
FETCH 1 FROM e;
FETCH BACKWARD 1 FROM e;
FETCH 1 FROM e;
ROLLBACK;
-- DISCARD ALL closes the peers' cursors too.
DECLARE d CURSOR WITH HOLD FOR SELECT id FROM src.public.t;
DISCARD ALL;
FETCH 1 FROM d;
-- The peer connection is left read-only, with no transaction or cursor
-- open.
SELECT current_setting('transaction_read_only') AS read_only, count(*) AS open_cursors,
    now() = statement_timestamp() AS own_transaction FROM src.pg_catalog.pg_cursors;

DROP PEER src;
DROP PEER ch;
