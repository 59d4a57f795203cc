--
-- syntax: how statements are split and parsed, and how syntax errors read.
--
-- Every syntax error is SQLSTATE 42601 with a position, which psql shows as
-- the offending line with a caret under the spot. An error ends only the
-- statement that caused it: the session goes on.
\set VERBOSITY verbose

--
-- Standard SQL: parsed by Postgres' own parser, so errors read as Postgres'.
--

SELEC 1;
SELECT 1 +;
SELECT * FROM WHERE;
SELECT 'a' 'b';
-- On a later line of a statement, psql shows that line.
SELECT 1,
       2,
       3 4 5;
-- Positions count characters, not bytes.
SELECT 'héllo wörld' AS greeting, 'ünïcödé' FROM;
-- The session is still usable.
SELECT 'still here' AS status;

-- Two statements on one line are two queries to psql.
SELECT 1 AS x; SELECT 2 AS y;

--
-- Several statements in one query string. psql sends "a \; b" as one
-- string; a syntax error anywhere in it stops all of it before anything
-- runs (Postgres parses the whole string first), and the position counts
-- from the start of the string.
--
SELECT 1 AS a \; SELECT 2 AS b;
SELECT 1 AS a \; SELEC 2 AS b;
SELECT 1 AS a \; CREATE PEER \; SELECT 3 AS c;
-- A run-time error stops the rest of the string, after what already ran.
SELECT 1 AS a \; SELECT 1/0 \; SELECT 3 AS c;
-- Sluice's statements and standard SQL mix freely.
DROP PEER IF EXISTS nothing \; SELECT 'after drop' AS next;
-- Empty statements are skipped.
SELECT 1 AS a \; \; SELECT 2 AS b;

--
-- Comments and case
--

-- A comment before the statement, /* block */ comments, nested /* /* */ */.
/* leading */ SELECT /* inner /* nested */ still inner */ 'comments' AS c -- trailing
;
-- Keywords are case-insensitive; unquoted names fold to lower case, quoted
-- names keep their case.
dRoP pEeR iF eXiStS Some_Peer;
DROP PEER IF EXISTS "Some_Peer";
-- A name may be a keyword, as in PeerDB.
DROP PEER IF EXISTS select;

--
-- CREATE PEER
--

CREATE PEER;
CREATE PEER p;
CREATE PEER p FROM;
CREATE PEER p FROM ORACLE;
CREATE PEER p FROM 'POSTGRES';
CREATE PEER p FROM POSTGRES WITH;
CREATE PEER p FROM POSTGRES WITH ();
CREATE PEER p FROM POSTGRES WITH (host);
CREATE PEER p FROM POSTGRES WITH (host 'h');
CREATE PEER p FROM POSTGRES WITH (host = );
CREATE PEER p FROM POSTGRES WITH (host = "h");
CREATE PEER p FROM POSTGRES WITH (port = -);
CREATE PEER p FROM POSTGRES WITH (host = 'h' port = 5432);
CREATE PEER p FROM POSTGRES WITH (host = 'h',, port = 5432);
CREATE PEER p FROM POSTGRES WITH (host = 'h', HOST = 'h2');
CREATE PEER p FROM POSTGRES WITH (host = 'h') extra;
CREATE PEER p FROM POSTGRES extra;
CREATE PEER p.q FROM POSTGRES WITH (host = 'h');
CREATE PEER IF NOT p FROM POSTGRES WITH (host = 'h');
CREATE PEER 'p' FROM POSTGRES WITH (host = 'h');
-- Over several lines, the caret is on the line of the error.
CREATE PEER p FROM POSTGRES WITH (
    host = 'h',
    port = 5432
    user = 'u'
);

--
-- DROP PEER
--

DROP PEER;
DROP PEER IF EXISTS;
DROP PEER p q;
DROP PEER p, q;
DROP PEER p WITH (force = true);

--
-- EXECUTE: only EXECUTE name('one string') is ours; any other EXECUTE is
-- Postgres' EXECUTE of a prepared statement.
--

EXECUTE p('SELECT 1', 'SELECT 2');
EXECUTE p(1);
EXECUTE p;
EXECUTE p('SELECT 1') extra;

--
-- Mirror statements parse, but this version does not run them: each
-- returns 0A000 (feature not supported), never a syntax error.
--

-- Table mappings source:destination, with and without schemas, and options.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (
    public.users:public.users_copy,
    orders:archive.orders
) WITH (do_initial_copy = true, max_batch_size = 100000, publication_name = 'pub');
-- The brace form, keys in any order and case.
CREATE MIRROR IF NOT EXISTS m FROM src TO dst WITH TABLE MAPPING (
    {from: public.users, to: public.users_copy, key: id, exclude: [password, ssn]},
    {TO: archive.orders, FROM: orders, order_by: [id, created_at], Exclude: []}
);
DROP MIRROR m;
DROP MIRROR IF EXISTS m WITH (force = true);
PAUSE MIRROR m;
PAUSE MIRROR IF EXISTS m;
RESUME MIRROR m;
RESUME MIRROR IF EXISTS m;
RESYNC MIRROR m;
RESYNC MIRROR IF EXISTS m WITH (drop_destination = false);
RESYNC TABLE m.public.users;
RESYNC TABLE m.users WITH (strategy = swap);
RESYNC TABLE m.public.users WITH (strategy = 'truncate');
-- PeerDB's query replication is refused as such.
EXECUTE MIRROR m;

--
-- Mirror statement syntax errors
--

CREATE MIRROR;
CREATE MIRROR m;
CREATE MIRROR m FROM src;
CREATE MIRROR m FROM src TO;
CREATE MIRROR m FROM src TO dst;
CREATE MIRROR m FROM src TO dst WITH (a = 1);
CREATE MIRROR m FROM src TO dst WITH TABLE;
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING;
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ();
-- Bad mapping syntax.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a b);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:b c:d);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a.b.c:d);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a.:b);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ('a':'b');
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:b,);
-- Bad brace mappings: unknown key, repeated key, missing from or to,
-- malformed lists.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b, colour: red});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b, FROM: c});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({to: b, key: id});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from a, to: b});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a to: b});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b, exclude: c});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b, exclude: [c d]});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b, exclude: [c,]});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({});
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING ({from: a, to: b);
-- Options: duplicate key, trailing garbage.
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:b) WITH (x = 1, X = 2);
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:b) WITH (x = 1) extra;
CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (a:b) extra;
-- Forms PeerDB has and Sluice refuses, with a reason.
CREATE MIRROR m FROM src TO dst FOR $$SELECT 1$$ WITH (destination_table_name = 't');
CREATE MIRROR m FROM src TO dst WITH SCHEMA MAPPING (public:public);

DROP MIRROR;
DROP MIRROR m extra;
DROP MIRROR m WITH (force = true, force = false);
PAUSE m;
PAUSE MIRROR;
PAUSE MIRROR m extra;
RESUME;
RESUME MIRROR m WITH (a = 1);
RESYNC;
RESYNC m;
RESYNC MIRROR;
RESYNC TABLE;
RESYNC TABLE users;
RESYNC TABLE m.public.users.extra;
RESYNC TABLE m.public.users WITH (strategy = swap) extra;
RESYNC TABLE m.public.users WITH (strategy = "swap");

-- After all that, the session still works.
SELECT 'done' AS status;
