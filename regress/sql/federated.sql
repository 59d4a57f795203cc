--
-- federated: EXECUTE peer('...') and SELECT ... FROM peer.schema.table.
--
-- A query naming a peer as the first part of a three-part table name runs
-- on that peer, with the peer part removed; EXECUTE runs any SQL there.
-- Results, notices and errors must read exactly as they would if psql were
-- connected to the peer itself.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);
-- A second name for the same database, quoted to keep its case.
CREATE PEER "Src Two" FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);

--
-- EXECUTE: raw SQL on the peer, several statements in one string (here
-- dollar-quoted, so the quotes inside need no doubling). It makes a table
-- with every common type, one row of values and one of NULLs.
--
EXECUTE src($$
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE all_types (
    id serial PRIMARY KEY,
    b boolean, i2 smallint, i4 integer, i8 bigint,
    n numeric(20,6), nn numeric, r real, d double precision,
    t text, vc varchar(10), c char(3), by bytea,
    dt date, tm time, tmtz timetz, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb, ia integer[], ta text[],
    ip inet, cidr_ cidr, mac macaddr, m mood, pi posint, x xml, pt point,
    money_ money, tsr tsrange
);
INSERT INTO all_types (b, i2, i4, i8, n, nn, r, d, t, vc, c, by, dt, tm, tmtz, ts, tstz, iv,
    u, j, jb, ia, ta, ip, cidr_, mac, m, pi, x, pt, money_, tsr)
VALUES (true, -32768, 2147483647, -9223372036854775808,
    12345678901234.123456, 'NaN', 1.5, -2.25e-300,
    E'multi\nline ''quoted'' \\ backslash', 'short', 'ab', '\xdeadbeef00',
    '2024-02-29', '23:59:59.999999', '12:00+05:30',
    '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+00', '1 year 2 mons 3 days 04:05:06',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{"b": {"c": null}}',
    '{1,NULL,3}', '{"x y","NULL",""}',
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', 'sad', 7, '<a>b</a>',
    '(1.5,-2)', '12.34', '[2024-01-01,2024-02-01)');
INSERT INTO all_types DEFAULT VALUES;
CREATE TABLE orders (id int PRIMARY KEY, item int REFERENCES all_types, qty int NOT NULL);
INSERT INTO orders VALUES (10, 1, 3), (11, 1, 4), (12, 2, 5);
$$);

--
-- SELECT through peer.schema.table
--

-- Every type, in expanded display (one line per column).
\x on
SELECT * FROM src.public.all_types ORDER BY id;
\x off

-- The result's column types are the peer's own (extended protocol). A
-- domain is described as its base type, as Postgres does.
SELECT id, n, t, ia, pi, tstz FROM src.public.all_types \gdesc

-- WHERE, ORDER BY, aggregates.
SELECT id, i4, t IS NULL AS t_is_null FROM src.public.all_types WHERE id > 0 ORDER BY id DESC;
SELECT id FROM src.public.all_types WHERE b AND m = 'sad' AND ia[2] IS NULL AND jb @> '{"b": {}}';
SELECT count(*), count(b), sum(i8), max(dt), min(n), string_agg(vc, ',') FROM src.public.all_types;
SELECT m, count(*) FROM src.public.all_types GROUP BY m ORDER BY m NULLS LAST;

-- Joins: two tables of the peer, and a peer table with itself.
SELECT o.id, o.qty, a.vc
FROM src.public.orders o JOIN src.public.all_types a ON a.id = o.item
ORDER BY o.id;
SELECT a.id, b.id AS other
FROM src.public.all_types a JOIN src.public.all_types b ON a.id < b.id;
-- With local values and a subquery.
SELECT v.label, sum(o.qty) AS qty
FROM src.public.orders o JOIN (VALUES (1, 'full'), (2, 'empty')) AS v(id, label) ON v.id = o.item
WHERE o.item IN (SELECT id FROM src.public.all_types)
GROUP BY v.label ORDER BY v.label;

-- A CTE.
WITH big AS (SELECT item, qty FROM src.public.orders WHERE qty > 3)
SELECT item, sum(qty) AS qty FROM big GROUP BY item ORDER BY item;

-- Peer names: quoted, unquoted in any case, with spaces around the dots.
SELECT count(*) FROM "Src Two".public.orders;
SELECT count(*) FROM "src".public.orders;
SELECT count(*) FROM SRC.Public.Orders;
SELECT count(*) FROM src . public . orders;

-- EXPLAIN runs on the peer too.
EXPLAIN (COSTS OFF) SELECT count(*) FROM src.public.orders;

--
-- EXECUTE returning rows
--

EXECUTE src('SELECT id, t, by FROM all_types ORDER BY id');
-- Quotes doubled inside a standard string.
EXECUTE src('SELECT ''it''''s'' AS quoted');
-- Several statements: each one's rows are shown.
EXECUTE src('SELECT 1 AS one; SELECT 2 AS two, 3 AS three');
-- Statements after a failing one do not run (as in Postgres).
EXECUTE src('SELECT 1 AS before; SELECT 1/0; SELECT 3 AS after');
-- A notice from the peer is relayed.
EXECUTE src('DROP TABLE IF EXISTS no_such_table');
-- A peer's warning keeps its SQLSTATE and hint.
EXECUTE src($q$DO $$ BEGIN RAISE WARNING 'careful' USING HINT = 'Look both ways.'; END $$$q$);
-- The peer's tables changed by EXECUTE are visible by name at once.
EXECUTE src('CREATE TABLE later (a int); INSERT INTO later VALUES (42)');
SELECT a FROM src.public.later;

--
-- Errors
--

-- An unknown peer (42704), pointing at its name.
SELECT * FROM nosuch.public.all_types;
EXECUTE nosuch('SELECT 1');

-- A table missing on the peer: the peer's own error (42P01), pointing at
-- the name in the query as written.
SELECT * FROM src.public.missing;
SELECT o.id FROM src.public.orders o JOIN src.public.missing m ON m.id = o.id;
-- A missing column, after a peer qualifier the peer never saw.
SELECT id FROM src.public.orders WHERE no_such_column = 1;
-- The peer's hint is relayed.
SELECT id FROM src.public.all_types WHERE t = 1;
-- In the second statement of a query string, the position counts from the
-- start of the string.
SELECT 1 AS x \; SELECT id FROM src.public.orders WHERE nope;
-- Inside EXECUTE, the position points into the string.
EXECUTE src('SELECT * FROM missing');

-- The peer's error fields are relayed: detail, schema, table, constraint...
EXECUTE src('INSERT INTO orders VALUES (10, 1, 1)');
EXECUTE src('SELECT (-1)::posint');
EXECUTE src('INSERT INTO orders VALUES (13, 1, NULL)');
-- ... and its context.
EXECUTE src($q$DO $$ BEGIN RAISE EXCEPTION 'boom %', 42; END $$$q$);

-- Writes by peer name (INSERT, UPDATE, DELETE, CREATE TABLE, ...) run on
-- the peer (see peerwrite.sql); other statements may not name a peer's
-- table (0A000): EXECUTE runs anything.
CREATE VIEW src.public.made_here AS SELECT 1 AS a;

-- A SELECT that writes is no read either: a data-modifying WITH, SELECT
-- INTO a new table, EXPLAIN ANALYZE of a write. Only the SQLSTATE is shown.
\set VERBOSITY sqlstate
WITH gone AS (DELETE FROM src.public.orders RETURNING id) SELECT count(*) FROM gone;
SELECT 1 AS a INTO src.public.made_here;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) DELETE FROM src.public.orders;
\set VERBOSITY verbose

-- A query reads from one peer (0A000), pointing at the second.
SELECT * FROM src.public.orders JOIN "Src Two".public.orders USING (id);

-- A query runs entirely where it is routed: the catalog's views are not
-- visible on a peer, and a two-part name is looked up in the catalog.
SELECT count(*) FROM src.public.orders, peers;
SELECT count(*) FROM public.orders;

-- None of the refused statements changed anything.
SELECT count(*), sum(qty) FROM src.public.orders;
EXECUTE src($$SELECT count(*) AS made_here FROM pg_class WHERE relname = 'made_here'$$);

-- A dropped peer can no longer be queried.
DROP PEER "Src Two";
SELECT count(*) FROM "Src Two".public.orders;
