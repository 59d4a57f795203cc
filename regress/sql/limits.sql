--
-- limits: a statement nested too deeply, or too large, for Sluice to parse
-- safely is refused with SQLSTATE 54001 (statement_too_complex) before
-- Postgres' parser sees it. Only that statement fails: the session goes on.
-- The statements are built with SQL and sent with psql's \gexec, with echo
-- off around them: they are up to 3 MB long.
--
\set VERBOSITY verbose

\set ECHO none
\echo '-- SELECT 1+1+...+1 with 30,000 terms (about 60 KB)'
SELECT 'SELECT ' || string_agg('1', '+') FROM generate_series(1, 30000) \gexec
\set ECHO all
SELECT 41 + 1 AS answer;

\set ECHO none
\echo '-- 30,000 parentheses, 10,000 ARRAY[, 5,000 nested CASEs, 30,000 UNIONs'
SELECT 'SELECT ' || repeat('(', 30000) || '1' || repeat(')', 30000) \gexec
SELECT 'SELECT ' || repeat('ARRAY[', 10000) || '1' || repeat(']', 10000) \gexec
SELECT 'SELECT ' || repeat('CASE WHEN true THEN ', 5000) || '1' || repeat(' END', 5000) \gexec
SELECT 'SELECT 1' || repeat(' UNION SELECT 1', 30000) \gexec
\echo '-- one million terms: scanned, then refused for its depth'
SELECT 'SELECT 1' || repeat('+1', 999999) \gexec
\echo '-- one and a half million terms (3 MB): refused for its length, unscanned'
SELECT 'SELECT 1' || repeat('+1', 1499999) \gexec
\set ECHO all

-- In a transaction block the error aborts the block, as any error does.
BEGIN;
\set ECHO none
\echo '-- 30,000 casts: 1::int::int...'
SELECT 'SELECT 1' || repeat('::int', 30000) \gexec
\set ECHO all
SELECT 1;
ROLLBACK;
SELECT 'still here' AS session;

-- Big statements that Postgres' grammar keeps flat pass: 20,000 ORs, a
-- 1,000-way UNION ALL, a CASE with 5,000 arms, an IN list of 100,000.
\set ECHO none
SELECT 'SELECT count(*) AS matches FROM generate_series(1, 100) g WHERE '
    || string_agg('g = ' || i, ' OR ') FROM generate_series(1, 20000) i \gexec
SELECT 'SELECT count(*) AS arms FROM (' || string_agg('SELECT ' || i, ' UNION ALL ') || ') u'
    FROM generate_series(1, 1000) i \gexec
SELECT 'SELECT CASE 4999' || string_agg(' WHEN ' || i || ' THEN ''arm ' || i || '''', '')
    || ' END AS arm' FROM generate_series(1, 5000) i \gexec
SELECT 'SELECT 99999 IN (' || string_agg(i::text, ', ') || ') AS found'
    FROM generate_series(1, 100000) i \gexec
\set ECHO all
