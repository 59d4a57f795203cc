package sqlext

import (
	"errors"
	"testing"
)

// errorCase is a test of a failing parse: exact message and position.
type errorCase struct {
	name string
	sql  string
	msg  string
	pos  Pos
}

// Statement prefixes used to keep positions readable: each ends where the
// next token starts.
const (
	peerWith = "CREATE PEER p FROM postgres WITH "               // 33 characters
	mapping  = "CREATE MIRROR m FROM s TO d WITH TABLE MAPPING " // 47 characters
)

var inputErrors = []errorCase{
	{"input/invalid utf-8", "SELECT 'é\xff'", `invalid byte sequence for encoding "UTF8": 0xff`, 10},
	{"input/nul byte", "SELECT 1\x00", `invalid byte sequence for encoding "UTF8": 0x00`, 9},
	{"scan/unterminated string", "SELECT 'abc", `unterminated quoted string at or near "'abc"`, 8},
	{"scan/unterminated identifier after multi-byte text", `SELECT 'é'; SELECT "x`, `unterminated quoted identifier at or near ""x"`, 20},
	{"scan/unterminated dollar quote in our statement", "EXECUTE pg($$x)", `unterminated dollar-quoted string at or near "$$x)"`, 12},
	{"scan/earlier statement fails first", "CREATE PEER p FROM oracle; SELECT 'abc",
		`unrecognized peer type "oracle" (valid types: POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE, BIGQUERY)`, 20},
	{"scan/earlier standard statement fails first", "SELECT 1 +; SELECT 'x", `syntax error at or near ";"`, 11},
	{"scan/error without a position", peerWith + `(password = E'\xff')`, `invalid byte sequence for encoding "UTF8": 0xff`, 0},
	{"postgres/first token", "SELEC 1", `syntax error at or near "SELEC"`, 1},
	{"postgres/second statement", "SELECT 1; SELECT * FRM t", `syntax error at or near "FRM"`, 20},
	{"postgres/after multi-byte text", "SELECT 'ééé' frm x", `syntax error at or near "x"`, 18},
	{"postgres/second statement after multi-byte text", "SELECT 'ü'; SELECT 'ééé' frm x", `syntax error at or near "x"`, 30},
	{"postgres/end of input", "SELECT 1 +", "syntax error at end of input", 11},
	{"postgres/end of input after a comment", "SELECT 1 + -- c\n", "syntax error at end of input", 17},
	{"postgres/at the semicolon", "SELECT 1 +; SELECT 2", `syntax error at or near ";"`, 11},
	{"postgres/semicolon inside parentheses", "SELECT (1; SELECT 2)", `syntax error at or near ";"`, 10},
	{"postgres/quoted verb is not ours", `"pause" mirror m`, `syntax error at or near ""pause""`, 1},
	{"postgres/execute with extra tokens", "EXECUTE pg('x') y", `syntax error at or near "y"`, 17},
}

var peerErrors = []errorCase{
	{"create peer/no name", "CREATE PEER", "expected peer name, found end of input", 12},
	{"create peer/bad name", "CREATE PEER (x)", `expected peer name, found "("`, 13},
	{"create peer/if not without exists", "CREATE PEER IF NOT x", `expected EXISTS after IF NOT, found "x"`, 20},
	{"create peer/no from", "CREATE PEER p", "expected FROM after peer name, found end of input", 14},
	{"create peer/wrong keyword", "CREATE PEER p TO postgres", `expected FROM after peer name, found "TO"`, 15},
	{"create peer/no type", "CREATE PEER p FROM", "expected peer type after FROM, found end of input", 19},
	{"create peer/no type before semicolon", "CREATE PEER p FROM; SELECT 1", `expected peer type after FROM, found ";"`, 19},
	{"create peer/string type", "CREATE PEER p FROM 'postgres'", `expected peer type after FROM, found "'postgres'"`, 20},
	{"create peer/unknown type", "CREATE PEER p FROM oracle",
		`unrecognized peer type "oracle" (valid types: POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE, BIGQUERY)`, 20},
	{"create peer/postgresql is not an alias", "create peer p from postgresql",
		`unrecognized peer type "postgresql" (valid types: POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE, BIGQUERY)`, 20},
	{"create peer/unknown type in second statement", "SELECT 'ü'; CREATE PEER \"é\" FROM nope",
		`unrecognized peer type "nope" (valid types: POSTGRES, CLICKHOUSE, MYSQL, SNOWFLAKE, BIGQUERY)`, 34},
	{"create peer/options without with", "CREATE PEER p FROM postgres host = 'x'", `expected WITH or end of statement, found "host"`, 29},
	{"options/no parenthesis", peerWith + "host = 'x'", `expected "(" after WITH, found "host"`, 34},
	{"options/with at end", peerWith, `expected "(" after WITH, found end of input`, 34},
	{"options/empty", peerWith + "()", `expected option name, found ")"`, 35},
	{"options/no equals", peerWith + "(host 'x')", `expected "=" after option name "host", found "'x'"`, 40},
	{"options/no value", peerWith + "(host = )", `expected value for option "host", found ")"`, 42},
	{"options/no comma", peerWith + "(host = 'a' port = 1)", `expected "," or ")" after option value, found "port"`, 46},
	{"options/trailing comma", peerWith + "(host = 'a',)", `expected option name, found ")"`, 46},
	{"options/unclosed", peerWith + "(host = 'a'", `expected "," or ")" after option value, found end of input`, 45},
	{"options/unclosed before next statement", peerWith + "(host = 'a'; SELECT 1", `expected "," or ")" after option value, found ";"`, 45},
	{"options/duplicate key", peerWith + "(host = 'a', HOST = 'b')", `option "host" specified more than once`, 47},
	{"options/sign without number", peerWith + "(port = -x)", `expected number after "-", found "x"`, 43},
	{"options/cast", peerWith + "(port = '1'::int)", `expected "," or ")" after option value, found "::"`, 45},
	{"options/double-quoted value", peerWith + `(host = "h")`,
		`expected value for option "host", found quoted identifier ""h"" (string literals take single quotes)`, 42},
	{"options/bit string", peerWith + "(x = b'01')", `expected value for option "x", found "b'01'"`, 39},
	{"options/bad unicode escape", peerWith + `(x = U&'\zzzz')`, "invalid Unicode escape", 42},
	{"options/trailing garbage", peerWith + "(a = 1) x", `syntax error at or near "x"`, 42},
	{"drop peer/no name", "DROP PEER", "expected peer name, found end of input", 10},
	{"drop peer/if exists without name", "DROP PEER IF EXISTS", "expected peer name, found end of input", 20},
	{"drop peer/cascade", "DROP PEER p CASCADE", `syntax error at or near "CASCADE"`, 13},
	{"drop peer/options", "DROP PEER p WITH (a = 1)", `syntax error at or near "WITH"`, 13},
	{"execute peer/bad unicode escape", `EXECUTE pg(U&'\zzzz')`, "invalid Unicode escape", 15},
	{"execute mirror/trailing garbage", "EXECUTE MIRROR m x", `syntax error at or near "x"`, 18},
}

var mirrorErrors = []errorCase{
	{"create mirror/no name", "CREATE MIRROR", "expected mirror name, found end of input", 14},
	{"create mirror/no from", "CREATE MIRROR m", "expected FROM after mirror name, found end of input", 16},
	{"create mirror/no source", "CREATE MIRROR m FROM", "expected source peer name after FROM, found end of input", 21},
	{"create mirror/no to", "CREATE MIRROR m FROM s", "expected TO after source peer name, found end of input", 23},
	{"create mirror/into", "CREATE MIRROR m FROM s INTO d", `expected TO after source peer name, found "INTO"`, 24},
	{"create mirror/no destination", "CREATE MIRROR m FROM s TO", "expected destination peer name after TO, found end of input", 26},
	{"create mirror/no mapping", "CREATE MIRROR m FROM s TO d", "expected WITH TABLE MAPPING after destination peer name, found end of input", 28},
	{"create mirror/query replication", "CREATE MIRROR m FROM s TO d FOR $$SELECT 1$$ WITH (x = 1)",
		"query replication mirrors (CREATE MIRROR ... FOR $$...$$) are not supported", 29},
	{"create mirror/schema mapping", "CREATE MIRROR m FROM s TO d WITH SCHEMA MAPPING (a:b)",
		"schema mapping (WITH SCHEMA MAPPING) is not supported; list the tables with WITH TABLE MAPPING", 34},
	{"create mirror/options instead of mapping", "CREATE MIRROR m FROM s TO d WITH (a = 1)", `expected TABLE MAPPING after WITH, found "("`, 34},
	{"create mirror/table without mapping", "CREATE MIRROR m FROM s TO d WITH TABLE (a:b)", `expected MAPPING after WITH TABLE, found "("`, 40},
	{"mapping/no parenthesis", mapping + "a:b", `expected "(" after TABLE MAPPING, found "a"`, 48},
	{"mapping/empty", mapping + "()", `expected table mapping, found ")"`, 49},
	{"mapping/no colon", mapping + "(a.b)", `expected ":" after source table name, found ")"`, 52},
	{"mapping/no destination", mapping + "(a.b:)", `expected destination table name after ":", found ")"`, 53},
	{"mapping/three parts", mapping + "(a.b.c:d)", "improper qualified name (too many dotted names): a.b.c", 49},
	{"mapping/dot without name", mapping + "(a.:d)", `expected name after ".", found ":"`, 51},
	{"mapping/no comma", mapping + "(a:b c:d)", `expected "," or ")" after table mapping, found "c"`, 53},
	{"mapping/trailing comma", mapping + "(a:b,)", `expected table mapping, found ")"`, 53},
	{"mapping/unclosed", mapping + "(a:b", `expected "," or ")" after table mapping, found end of input`, 52},
	{"mapping/string", mapping + "('a':b)", `expected table mapping, found "'a'"`, 49},
	{"mapping/trailing garbage", mapping + "(a:b) x", `expected WITH or end of statement, found "x"`, 54},
	{"mapping/garbage after options", mapping + "(a:b) WITH (x = 1) y", `syntax error at or near "y"`, 67},
	{"brace/unknown key", mapping + "({from: a, to: b, keys: c})",
		`unrecognized table mapping key "keys" (valid keys: from, to, key, exclude, order_by)`, 66},
	{"brace/quoted key keeps case", mapping + `({"FROM": a, to: b})`,
		`unrecognized table mapping key ""FROM"" (valid keys: from, to, key, exclude, order_by)`, 50},
	{"brace/duplicate key", mapping + "({from: a, to: b, FROM: c})", `table mapping key "from" specified more than once`, 66},
	{"brace/missing to", mapping + "({from: a})", `table mapping is missing "to"`, 49},
	{"brace/missing from", mapping + "({to: a})", `table mapping is missing "from"`, 49},
	{"brace/no colon", mapping + "({from a})", `expected ":" after table mapping key "from", found "a"`, 55},
	{"brace/empty", mapping + "({})", `expected table mapping key, found "}"`, 50},
	{"brace/no comma", mapping + "({from: a to: b})", `expected "," or "}" in table mapping, found "to"`, 58},
	{"brace/exclude not a list", mapping + "({from: a, exclude: x})", `expected "[" after "exclude:", found "x"`, 68},
	{"brace/list without comma", mapping + "({from: a, exclude: [x y]})", `expected "," or "]" after column name, found "y"`, 71},
	{"brace/list trailing comma", mapping + "({from: a, exclude: [x,]})", `expected column name, found "]"`, 71},
	{"brace/numeric key", mapping + "({from: a, key: 1})", `expected column name after "key:", found "1"`, 64},
	{"brace/no destination", mapping + "({from: a, to: })", `expected destination table name after "to:", found "}"`, 63},
	{"brace/string source", mapping + "({from: 'a'})", `expected source table name after "from:", found "'a'"`, 56},
	{"drop mirror/no name", "DROP MIRROR", "expected mirror name, found end of input", 12},
	{"drop mirror/trailing garbage", "DROP MIRROR m x", `expected WITH or end of statement, found "x"`, 15},
	{"pause/alone", "PAUSE", "expected MIRROR after PAUSE, found end of input", 6},
	{"pause/peer", "PAUSE PEER p", `expected MIRROR after PAUSE, found "PEER"`, 7},
	{"pause/no name", "PAUSE MIRROR", "expected mirror name, found end of input", 13},
	{"pause/options", "PAUSE MIRROR m WITH (a = 1)", `syntax error at or near "WITH"`, 16},
	{"pause/in second statement", "pause mirror m; resume mirror", "expected mirror name, found end of input", 30},
	{"resume/wrong object", "RESUME x", `expected MIRROR after RESUME, found "x"`, 8},
	{"pause/table without name", "PAUSE MIRROR m TABLE", "expected table name, found end of input", 21},
	{"pause/table too many parts", "PAUSE MIRROR m TABLE a.b.c", "improper qualified name (too many dotted names): a.b.c", 22},
	{"resume/table then more", "RESUME MIRROR m TABLE t x", `syntax error at or near "x"`, 25},
	{"resync/alone", "RESYNC", "expected MIRROR or TABLE after RESYNC, found end of input", 7},
	{"resync/peer", "RESYNC PEER p", `expected MIRROR or TABLE after RESYNC, found "PEER"`, 8},
	{"resync/no mirror name", "RESYNC MIRROR", "expected mirror name, found end of input", 14},
	{"resync table/no name", "RESYNC TABLE", "expected mirror.schema.table after RESYNC TABLE, found end of input", 13},
	{"resync table/one part", "RESYNC TABLE t", `table name "t" must be qualified with its mirror name (mirror.schema.table)`, 14},
	{"resync table/four parts", "RESYNC TABLE m.s.t.u", "improper qualified name (too many dotted names): m.s.t.u", 14},
	{"resync table/dangling dot", "RESYNC TABLE m.s.", `expected name after ".", found end of input`, 18},
	{"resync table/trailing garbage", "RESYNC TABLE m.s.t x", `expected WITH or end of statement, found "x"`, 20},
}

func TestParseErrors(t *testing.T) {
	for _, group := range [][]errorCase{inputErrors, peerErrors, mirrorErrors} {
		for _, tc := range group {
			t.Run(tc.name, func(t *testing.T) {
				got, err := Parse(tc.sql)
				if err == nil {
					t.Fatalf("Parse(%q) = %s, want error %q at %d", tc.sql, dump(got), tc.msg, tc.pos)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("Parse(%q): error %T %v is not a *SyntaxError", tc.sql, err, err)
				}
				if se.Msg != tc.msg || se.Pos != tc.pos {
					t.Errorf("Parse(%q)\n got error %q at %d\nwant error %q at %d", tc.sql, se.Msg, se.Pos, tc.msg, tc.pos)
				}
				if got != nil {
					t.Errorf("Parse(%q) returned statements with its error: %s", tc.sql, dump(got))
				}
			})
		}
	}
}
