// Package sqlext parses Sluice's SQL dialect: standard Postgres SQL plus the
// PeerDB-compatible statements that manage peers and mirrors.
//
// [Parse] is pure (no I/O) and safe for concurrent use. It tokenizes the
// whole input with Postgres' own scanner (through pg_query), so strings,
// E'...' strings, dollar quotes, quoted identifiers and comments mean exactly
// what they mean in Postgres. It then splits the input into statements and
// looks at each statement's leading words: Sluice's verbs below are parsed by
// a small recursive-descent parser into typed nodes; anything else is handed
// to Postgres' parser and returned as a [Passthrough]. Only the leading words
// decide, so SELECT * FROM mirrors or CREATE TABLE peer (...) pass through.
//
// # Statements
//
// Keywords are case-insensitive. A name is an identifier: unquoted names are
// lower-cased (ASCII letters only, as Postgres does), "quoted" names keep
// their case. Keywords, even reserved ones, are accepted as unquoted names
// (PeerDB accepts public.user too). U&"..." identifiers are not accepted in
// Sluice statements.
//
//	CREATE PEER [IF NOT EXISTS] name FROM type [WITH (options)]
//	DROP PEER [IF EXISTS] name
//	EXECUTE peer('query')
//	EXECUTE peer("query")        -- PeerDB's form: the quoted identifier's text
//
//	CREATE MIRROR [IF NOT EXISTS] name FROM source TO destination
//	    WITH TABLE MAPPING (mapping [, ...]) [WITH (options)]
//	DROP MIRROR [IF EXISTS] name [WITH (options)]
//	PAUSE MIRROR [IF EXISTS] name [TABLE [schema.]table]
//	RESUME MIRROR [IF EXISTS] name [TABLE [schema.]table]
//	RESYNC MIRROR [IF EXISTS] name [WITH (options)]
//	RESYNC TABLE mirror.schema.table [WITH (options)]
//	EXECUTE MIRROR name
//	ALTER MIRROR [IF EXISTS] name SET (options)
//	ALTER MIRROR [IF EXISTS] name RESET (name [, ...])
//	ALTER MIRROR [IF EXISTS] name ADD TABLE MAPPING (mapping [, ...]) [WITH (options)]
//	ALTER MIRROR [IF EXISTS] name DROP TABLE [schema.]table [WITH (options)]
//	VALIDATE MIRROR name [TABLE [schema.]table] [WITH (options)]
//
// type is one of POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE, BIGQUERY, in any
// case.
//
// EXECUTE is ours only in exactly these shapes: EXECUTE word(string
// literal), EXECUTE word("double-quoted text") and EXECUTE MIRROR name. Any other EXECUTE, such as EXECUTE
// stmt(1, 2), is Postgres' EXECUTE of a prepared statement and passes
// through. Note that EXECUTE stmt('x') has the peer shape; the executor tells
// the two apart by whether a peer of that name exists.
//
// RESYNC TABLE also accepts mirror.table, leaving the table's schema empty
// for the executor to resolve.
//
// ALTER MIRROR's SET takes an option list as WITH does (see Options), and
// RESET a parenthesised, non-empty list of option names, none twice; which
// options may change is for the executor to say.
//
// CREATE MIRROR ... FOR $$query$$ (PeerDB's query replication) and WITH
// SCHEMA MAPPING parse far enough to be refused with a clear error.
//
// # Table mappings
//
// A mapping is either
//
//	source:destination
//
// where each side is [schema.]table, or the brace form
//
//	{from: schema.table, to: schema.table, key: column,
//	 exclude: [column, ...], order_by: [column, ...]}
//
// whose keys may come in any order and any case; from and to are required,
// and a key may not repeat. key is the snapshot partition column; exclude
// lists columns not replicated; order_by is the destination sort key (used by
// ClickHouse).
//
// # Options
//
//	(key = value [, ...])
//
// A key is a name; the list may not be empty and a key may not repeat. A
// value is a string literal in any Postgres form ('..', E'..', U&'..',
// $$..$$, adjacent literals separated by a newline), an optionally signed
// integer or decimal number, TRUE or FALSE, or a bare word such as swap
// (lower-cased; a "quoted" word is refused, as it is usually a string written
// with the wrong quotes).
// Numbers keep their source text, so port = 5432 and port = '5432' both give
// Text "5432". Which keys are allowed is not checked here; the executor
// rejects unknown keys.
//
// # Splitting
//
// Statements are separated by ';'. As in psql, a ';' inside parentheses
// (CREATE RULE ... DO (a; b)) or inside the BEGIN ATOMIC ... END body of
// CREATE [OR REPLACE] FUNCTION or PROCEDURE does not end a statement. Empty statements
// are skipped. A statement's Text runs from its first token to its last:
// surrounding whitespace, comments before it and after it, and the ';' are
// not part of it.
//
// # Errors
//
// Every error is a [*SyntaxError] whose Pos is a 1-based character (not byte)
// position in the text given to Parse, as Postgres reports in ErrorResponse.
// An error at the end of the input is reported one past the last character,
// where Postgres puts "syntax error at end of input". Errors from Postgres'
// parser keep its message; the position of an error in the second or later
// statement is relative to the whole input. Errors that Postgres reports
// without a position (such as an invalid byte sequence in an E'...' string)
// have Pos 0.
// [SyntaxError.SQLError] is the SQL error the server reports for one.
//
// # Limits
//
// Before any of it reaches pg_query, Parse (and ParseTree) refuses a query
// string that may hold more than [MaxTokens] tokens, counted from its text,
// and a statement whose parse tree may nest deeper than [MaxDepth] levels,
// estimated from its tokens: pg_query's C code recurses over the tree on the
// thread's stack, and an overflow there kills the process. The error is a
// *SyntaxError with Code 54001 (statement_too_complex) and a Hint; lists,
// AND/OR chains and CASE arms, which Postgres keeps flat, do not count.
//
// [Walk] visits every node of a tree ParseTree returned (the executor's
// checks and the ClickHouse connector's parameter inference use it).
package sqlext
