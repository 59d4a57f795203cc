\set ECHO none
-- wait.sql: polls until the psql variable "done" is true, every 0.1 s, for
-- at most 90 s (then it prints "wait gave up"). Each try runs the query in
-- :wait_for (one row with a boolean column named done) or, when
-- :wait_probe is set, includes that file (in include/), which sets done.
-- It prints nothing else, however long the wait, so expected output does
-- not depend on timing. psql has no loops: each try includes this file
-- again. Use it as
--   \set wait_for 'SELECT ... AS done FROM ...'
--   \ir include/wait.sql
--   \set ECHO all
\if :{?wait_tries}
\else
\set wait_tries 0
\endif
\unset done
\if :{?wait_probe}
\ir :wait_probe
\else
:wait_for \gset
\endif
\if :{?done}
\else
\set done false
\endif
SELECT :wait_tries + 1 AS wait_tries, :wait_tries >= 900 AS wait_gave_up \gset
\if :done
\unset wait_tries
\elif :wait_gave_up
\echo wait gave up
\unset wait_tries
\else
SELECT pg_sleep(0.1) AS wait_slept \gset
\ir wait.sql
\endif
