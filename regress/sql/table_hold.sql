--
-- table_hold: PAUSE MIRROR m TABLE t and RESUME MIRROR m TABLE t input
-- checks. Each error changes nothing. Holding and resuming a table, and a
-- table failing alone, run in the background and are covered by the Go
-- tests in executor/ (table_hold_test.go).
--
-- peer_db is the source database, peer_db2 the destination.
\set VERBOSITY verbose

CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text);
    CREATE TABLE other (id int PRIMARY KEY);
$$);
CREATE MIRROR th FROM src TO dst WITH TABLE MAPPING (public.users:public.users);

-- Unknown mirror; IF EXISTS turns it into a notice.
PAUSE MIRROR nosuch TABLE public.users;
RESUME MIRROR nosuch TABLE users;
PAUSE MIRROR IF EXISTS nosuch TABLE public.users;
-- A table the mirror does not have (tables are named by their source name;
-- without a schema, public).
PAUSE MIRROR th TABLE public.other;
RESUME MIRROR th TABLE other;
PAUSE MIRROR th TABLE nosuch.users;
-- Grammar: a table name, at most schema.table, nothing after it.
PAUSE MIRROR th TABLE;
PAUSE MIRROR th TABLE a.b.c;
RESUME MIRROR th TABLE users WITH (x = 1);
PAUSE MIRROR th public.users;

-- Nothing was asked for.
SELECT source_table, error FROM mirror_tables WHERE mirror = 'th';
SELECT count(*) FROM mirror_events WHERE mirror = 'th' AND kind = 'hold';

DROP MIRROR th;
DROP PEER src;
DROP PEER dst;
