--
-- peers: CREATE PEER, DROP PEER and the peers status view.
--
-- The runner sets peer_host, peer_port, peer_user, peer_password and peer_db
-- to a fresh database on a test cluster (wal_level = logical, a login with
-- the REPLICATION privilege), and peer_plain_user/peer_plain_password to a
-- login without it. Their values print as <peer_port> and so on.
--
-- VERBOSITY verbose makes psql print each error's SQLSTATE.
\set VERBOSITY verbose

-- A new server has no peers. created_at varies from run to run, so after
-- this the queries list the columns they show.
SELECT * FROM peers;

--
-- CREATE PEER
--

-- Numbers unquoted, as PeerDB's documentation writes them. A successful
-- CREATE PEER reports what it found on the peer.
CREATE PEER src FROM POSTGRES WITH (
    host = :'peer_host',
    port = :peer_port,
    user = :'peer_user',
    password = :'peer_password',
    database = :'peer_db'
);

-- Numbers quoted, as PeerDB's own scripts write them; keys and the type in
-- any case.
create peer src_quoted from postgres with (
    HOST = :'peer_host',
    Port = :'peer_port',
    USER = :'peer_user',
    password = :'peer_password',
    DataBase = :'peer_db'
);

-- A quoted name keeps its case.
CREATE PEER "Mixed Case" FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);

-- Optional settings: TLS disabled explicitly; metadata_schema is accepted
-- for PeerDB compatibility.
CREATE PEER src_no_tls FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db',
    disable_tls = true, metadata_schema = '_peerdb'
);

-- IF NOT EXISTS on an existing peer is a notice, not an error, and does
-- not contact the peer (so a wrong password here goes unnoticed).
CREATE PEER IF NOT EXISTS src FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = 'not-the-password', database = :'peer_db'
);

-- IF NOT EXISTS on a new name creates it.
CREATE PEER IF NOT EXISTS src_ine FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);

-- A login without the REPLICATION privilege makes a peer that can be a
-- destination but not a CDC source: created, with a warning.
CREATE PEER dest_only FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_plain_user',
    password = :'peer_plain_password', database = :'peer_db'
);

--
-- The peers view
--

SELECT name, type, host, port, database, "user", created_at IS NOT NULL AS has_created_at
FROM peers ORDER BY name;

-- WHERE, ORDER BY and aggregates work as on any view. port is text, as
-- given in CREATE PEER.
SELECT name FROM peers WHERE type = 'POSTGRES' AND "user" = :'peer_plain_user';
SELECT name FROM peers WHERE port = :'peer_port' ORDER BY name DESC LIMIT 2;
SELECT count(*) FROM peers;
SELECT type, count(*) AS peers, count(DISTINCT database) AS databases FROM peers GROUP BY type;
SELECT created_at <= now() AS created_in_the_past FROM peers WHERE name = 'src';

-- A self-join: peers that point at the same database as src.
SELECT a.name, b.name AS same_database_as
FROM peers a JOIN peers b ON a.database = b.database AND a.host = b.host AND a.port = b.port
WHERE b.name = 'src' AND a.name <> b.name
ORDER BY a.name;

-- No column of the view holds a password.
SELECT count(*) AS rows_showing_a_password
FROM peers p
WHERE p::text LIKE '%' || :'peer_password' || '%'
   OR p::text LIKE '%' || :'peer_plain_password' || '%';

--
-- Errors. None of them stores anything; the view is checked at the end.
--

-- The name is taken (42710), pointing at the name.
CREATE PEER src FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);

-- Options are checked before anything else, so the statements below use
-- made-up values: they fail before any connection is tried.

-- An unknown option is named, with the valid ones (42601), pointing at it.
CREATE PEER bad FROM POSTGRES WITH (host = 'h', colour = 'blue', user = 'u', database = 'd');

-- A required option is missing (22023): host, user and database are.
-- There is no option to point at, so the position is the peer's name.
CREATE PEER bad FROM POSTGRES WITH (port = 5432, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', user = 'u');
-- Blank is missing too.
CREATE PEER bad FROM POSTGRES WITH (host = '  ', user = 'u', database = 'd');
-- No WITH list at all.
CREATE PEER bad FROM POSTGRES;

-- Bad values (22023): the port must be a whole number from 1 to 65535;
-- booleans must be booleans; the TLS settings may not contradict each
-- other; root_ca must be a PEM certificate.
CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = 'x', user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = 0, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = 65536, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = -5432, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', port = 54.32, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', require_tls = 'maybe', user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', require_tls = true, disable_tls = true, user = 'u', database = 'd');
CREATE PEER bad FROM POSTGRES WITH (host = 'h', root_ca = 'not a certificate', user = 'u', database = 'd');

-- Nothing listens on port 1: the peer is checked before it is stored, so
-- this fails (08001) and leaves nothing behind.
CREATE PEER unreachable FROM POSTGRES WITH (
    host = :'peer_host', port = 1, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);

-- A wrong password is caught the same way, with the server's 28P01 and
-- message first. (The peers above found the server without TLS, so
-- Sluice tries it in plain text first for a while: no refused TLS
-- attempt follows in a DETAIL.)
CREATE PEER wrong_password FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = 'not-the-password', database = :'peer_db'
);

-- A database that does not exist on the peer.
CREATE PEER no_database FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = 'no_such_database'
);

-- The test cluster does not offer TLS, so requiring it fails.
CREATE PEER tls_required FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db', require_tls = true
);

-- A ClickHouse peer's options are checked before connecting: PeerDB's S3
-- staging options do not apply to Sluice and are refused, naming the option.
-- (Connecting to ClickHouse is tested in executor/clickhouse_peer_test.go.)
CREATE PEER ch FROM CLICKHOUSE WITH (host = 'localhost', port = 9000, s3_path = 's3://bucket/staging');

-- A MySQL peer's options are checked before connecting too: a missing user,
-- an unknown flavor, PeerDB's options Sluice does not take.
-- (Connecting to MariaDB is tested in executor/mysql_peer_test.go.)
CREATE PEER my FROM MYSQL WITH (host = 'localhost', port = 3306);
CREATE PEER my FROM MYSQL WITH (host = 'localhost', user = 'repl', flavor = 'percona');
CREATE PEER my FROM MYSQL WITH (host = 'localhost', user = 'repl', replication_mechanism = 'binlog');
CREATE PEER my FROM MYSQL WITH (host = 'localhost', user = 'repl', skip_binlog = true);

-- Other peer types parse but are not supported yet (0A000), pointing at
-- the type. Their options are not looked at.
CREATE PEER sf FROM snowflake WITH (account_id = 'a');
CREATE PEER bq FROM BigQuery WITH (project_id = 'p');

-- Proof that the failures above stored nothing.
SELECT name FROM peers ORDER BY name;

--
-- DROP PEER
--

DROP PEER src_ine;
-- Again: it no longer exists (42704), pointing at the name.
DROP PEER src_ine;
-- IF EXISTS makes that a notice.
DROP PEER IF EXISTS src_ine;
-- Names are case-folded as in Postgres: "Mixed Case" needs its quotes.
DROP PEER mixed;
DROP PEER "Mixed Case";
DROP PEER dest_only;
DROP PEER src_no_tls;

SELECT name FROM peers ORDER BY name;

-- A dropped name can be used again.
DROP PEER src_quoted;
CREATE PEER src_quoted FROM POSTGRES WITH (
    host = :'peer_host', port = :peer_port, user = :'peer_user',
    password = :'peer_password', database = :'peer_db'
);
SELECT name FROM peers ORDER BY name;
