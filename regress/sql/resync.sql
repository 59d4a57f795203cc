--
-- resync: RESYNC MIRROR and RESYNC TABLE input checks. Each error changes
-- nothing. The resyncs themselves run in the background and are covered by
-- the Go tests in executor/ (resync_test.go, crash_test.go).
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
CREATE MIRROR r FROM src TO dst WITH TABLE MAPPING (public.users:public.users);

-- Unknown mirror; IF EXISTS turns it into a notice.
RESYNC MIRROR nosuch;
RESYNC MIRROR IF EXISTS nosuch;
RESYNC TABLE nosuch.public.users;
-- A table the mirror does not have (tables are named by their source name).
RESYNC TABLE r.public.other;
RESYNC TABLE r.other;
-- Unknown strategy, unknown options.
RESYNC TABLE r.public.users WITH (strategy = 'rename');
RESYNC TABLE r.public.users WITH (strategy = 'swap', parallel = 4);
RESYNC MIRROR r WITH (strategy = 'swap');

-- Nothing was asked for.
SELECT source_table, resync_status, resync_strategy FROM mirror_tables WHERE mirror = 'r';
SELECT kind FROM mirror_events WHERE mirror = 'r' AND kind = 'resync';

DROP MIRROR r;
DROP PEER src;
DROP PEER dst;
