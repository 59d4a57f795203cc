--
-- validate: VALIDATE MIRROR through psql. A mirror of two tables (one
-- with an integer key, checksummed per key range; one with a text key,
-- checksummed as a whole); both modes report equal; rows changed and
-- deleted behind the mirror's back on the destination show as a
-- different count and the key ranges that hold them; every result is
-- recorded in mirror_validations; refused cases say why.
--
-- peer_db is the source database, peer_db2 the destination.
CREATE PEER src FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db');
CREATE PEER dst FROM POSTGRES WITH (host = :'peer_host', port = :peer_port,
    user = :'peer_user', password = :'peer_password', database = :'peer_db2');
EXECUTE src($$
    CREATE TABLE users (id int PRIMARY KEY, email text, score numeric(6,2), seen timestamptz, raw bytea);
    CREATE TABLE tags (name text PRIMARY KEY, n int);
    INSERT INTO users SELECT g, 'user' || g || '@example.com', g / 4.0, '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 hour',
        decode(md5(g::text), 'hex') FROM generate_series(1, 1000) g;
    UPDATE users SET email = NULL WHERE id % 10 = 0;
    INSERT INTO tags SELECT 'tag' || g, g FROM generate_series(1, 50) g;
$$);
CREATE MIRROR v FROM src TO dst WITH TABLE MAPPING (public.users:public.users, public.tags:public.tags)
    WITH (do_initial_copy = true);
\set wait_for 'SELECT status = ''RUNNING'' AS done FROM mirrors WHERE name = ''v'''
\ir include/wait.sql
\set ECHO all

-- Equal, in both modes; the source keeps changing in between.
VALIDATE MIRROR v;
EXECUTE src($$INSERT INTO users VALUES (1001, 'new', 1, now(), NULL); DELETE FROM users WHERE id = 5$$);
VALIDATE MIRROR v WITH (mode = 'checksum');
VALIDATE MIRROR v TABLE tags WITH (mode = CHECKSUM);

-- The destination drifts: one row changed, one deleted.
EXECUTE dst($$UPDATE users SET email = 'drifted' WHERE id = 123; DELETE FROM users WHERE id = 801$$);
VALIDATE MIRROR v TABLE public.users;
VALIDATE MIRROR v TABLE public.users WITH (mode = 'checksum');
EXECUTE dst($$UPDATE tags SET n = 0 WHERE name = 'tag7'$$);
VALIDATE MIRROR v TABLE tags WITH (mode = 'checksum');

-- What was recorded.
SELECT mode, source_table, source_rows, destination_rows, mismatched_ranges, status
FROM mirror_validations WHERE mirror = 'v' ORDER BY validated_at, source_table;

-- Refused: each changes nothing.
\set VERBOSITY verbose
VALIDATE MIRROR nosuch;
VALIDATE MIRROR v TABLE public.other;
VALIDATE MIRROR v WITH (mode = 'exact');
VALIDATE MIRROR v WITH (mode = 'count', parallel = 2);
VALIDATE MIRROR v TABLE;
PAUSE MIRROR v;
VALIDATE MIRROR v;
\set VERBOSITY default
SELECT count(*) AS recorded FROM mirror_validations WHERE mirror = 'v';

DROP MIRROR v;
DROP PEER src;
DROP PEER dst;
