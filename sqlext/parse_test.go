package sqlext

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// parseCase is a statement-level test: sql must parse into want.
// Passthrough entries are compared without their pg_query tree (Stmt), which
// must be present.
type parseCase struct {
	name string
	sql  string
	want []Statement
}

func qn(schema, name string, pos Pos) QualifiedName {
	return QualifiedName{Schema: schema, Name: name, Pos: pos}
}

func str(text string, pos Pos) Value   { return Value{Kind: StringValue, Text: text, Pos: pos} }
func num(text string, pos Pos) Value   { return Value{Kind: NumberValue, Text: text, Pos: pos} }
func boolv(text string, pos Pos) Value { return Value{Kind: BoolValue, Text: text, Pos: pos} }
func word(text string, pos Pos) Value  { return Value{Kind: IdentValue, Text: text, Pos: pos} }

func opt(key string, pos Pos, v Value) Option { return Option{Key: key, Pos: pos, Value: v} }

func pass(text string, offset int) *Passthrough { return &Passthrough{Text: text, Offset: offset} }

var peerCases = []parseCase{
	{
		name: "peer/basic",
		sql:  "CREATE PEER pg FROM POSTGRES WITH (host = 'h', port = 5432)",
		want: []Statement{&CreatePeer{
			Text: "CREATE PEER pg FROM POSTGRES WITH (host = 'h', port = 5432)",
			Name: "pg", NamePos: 13, Type: PeerPostgres, TypePos: 21,
			Options: Options{opt("host", 36, str("h", 43)), opt("port", 48, num("5432", 55))},
		}},
	},
	{
		name: "peer/if not exists, quoted name, lower case",
		sql:  `create peer if not exists "My Peer" from clickhouse`,
		want: []Statement{&CreatePeer{
			Text:        `create peer if not exists "My Peer" from clickhouse`,
			IfNotExists: true, Name: "My Peer", NamePos: 27, Type: PeerClickHouse, TypePos: 42,
		}},
	},
	{
		name: "peer/mixed case name and type",
		sql:  "Create Peer MyPg From MySql",
		want: []Statement{&CreatePeer{Text: "Create Peer MyPg From MySql", Name: "mypg", NamePos: 13, Type: PeerMySQL, TypePos: 23}},
	},
	{
		name: "peer/snowflake",
		sql:  "CREATE PEER s FROM snowflake",
		want: []Statement{&CreatePeer{Text: "CREATE PEER s FROM snowflake", Name: "s", NamePos: 13, Type: PeerSnowflake, TypePos: 20}},
	},
	{
		name: "peer/quoted type",
		sql:  `CREATE PEER b FROM "BigQuery"`,
		want: []Statement{&CreatePeer{Text: `CREATE PEER b FROM "BigQuery"`, Name: "b", NamePos: 13, Type: PeerBigQuery, TypePos: 20}},
	},
	{
		name: "peer/if as a name",
		sql:  "CREATE PEER if FROM postgres",
		want: []Statement{&CreatePeer{Text: "CREATE PEER if FROM postgres", Name: "if", NamePos: 13, Type: PeerPostgres, TypePos: 21}},
	},
	{
		name: "peer/every value form",
		sql: `CREATE PEER p FROM postgres WITH (a = 'x''y', b = E'\n', c = $$q;$$, d = $t$ 'z' $t$, ` +
			`e = -1, f = +2.5, g = 1e3, h = true, i = FALSE, j = swap, "K" = 'k', user = 'u', port = '5432')`,
		want: []Statement{&CreatePeer{
			Text: `CREATE PEER p FROM postgres WITH (a = 'x''y', b = E'\n', c = $$q;$$, d = $t$ 'z' $t$, ` +
				`e = -1, f = +2.5, g = 1e3, h = true, i = FALSE, j = swap, "K" = 'k', user = 'u', port = '5432')`,
			Name: "p", NamePos: 13, Type: PeerPostgres, TypePos: 20,
			Options: Options{
				opt("a", 35, str("x'y", 39)),
				opt("b", 47, str("\n", 51)),
				opt("c", 58, str("q;", 62)),
				opt("d", 70, str(" 'z' ", 74)),
				opt("e", 87, num("-1", 91)),
				opt("f", 95, num("+2.5", 99)),
				opt("g", 105, num("1e3", 109)),
				opt("h", 114, boolv("true", 118)),
				opt("i", 124, boolv("false", 128)),
				opt("j", 135, word("swap", 139)),
				opt("K", 145, str("k", 151)),
				opt("user", 156, str("u", 163)),
				opt("port", 168, str("5432", 175)),
			},
		}},
	},
	{
		name: "peer/unicode escapes, continuation and signed numbers",
		sql:  "CREATE PEER p FROM postgres WITH (a = U&'d\\0061t', b = U&'d!0061t' UESCAPE '!', c = 'x'\n'y', d = - 5)",
		want: []Statement{&CreatePeer{
			Text: "CREATE PEER p FROM postgres WITH (a = U&'d\\0061t', b = U&'d!0061t' UESCAPE '!', c = 'x'\n'y', d = - 5)",
			Name: "p", NamePos: 13, Type: PeerPostgres, TypePos: 20,
			Options: Options{
				opt("a", 35, str("dat", 39)),
				opt("b", 52, str("dat", 56)),
				opt("c", 81, str("xy", 85)),
				opt("d", 94, num("-5", 98)),
			},
		}},
	},
	{
		name: "peer/quoted and unquoted keys differ",
		sql:  `CREATE PEER p FROM postgres WITH ("Host" = 'a', host = 'b')`,
		want: []Statement{&CreatePeer{
			Text: `CREATE PEER p FROM postgres WITH ("Host" = 'a', host = 'b')`,
			Name: "p", NamePos: 13, Type: PeerPostgres, TypePos: 20,
			Options: Options{opt("Host", 35, str("a", 44)), opt("host", 49, str("b", 56))},
		}},
	},
	{
		name: "peer/drop",
		sql:  "DROP PEER pg",
		want: []Statement{&DropPeer{Text: "DROP PEER pg", Name: "pg", NamePos: 11}},
	},
	{
		name: "peer/drop if exists quoted",
		sql:  `drop peer if exists "PG"`,
		want: []Statement{&DropPeer{Text: `drop peer if exists "PG"`, IfExists: true, Name: "PG", NamePos: 21}},
	},
	{
		name: "peer/drop a peer named if",
		sql:  "DROP PEER if",
		want: []Statement{&DropPeer{Text: "DROP PEER if", Name: "if", NamePos: 11}},
	},
	{
		name: "peer/execute",
		sql:  "EXECUTE pg('SELECT 1; SELECT 2')",
		want: []Statement{&ExecutePeer{Text: "EXECUTE pg('SELECT 1; SELECT 2')", Peer: "pg", PeerPos: 9, Query: "SELECT 1; SELECT 2"}},
	},
	{
		name: "peer/execute dollar quoted",
		sql:  `execute "Pg"($$select 'x'$$)`,
		want: []Statement{&ExecutePeer{Text: `execute "Pg"($$select 'x'$$)`, Peer: "Pg", PeerPos: 9, Query: "select 'x'"}},
	},
	{
		name: "peer/execute escape string",
		sql:  `EXECUTE pg(E'a\'b')`,
		want: []Statement{&ExecutePeer{Text: `EXECUTE pg(E'a\'b')`, Peer: "pg", PeerPos: 9, Query: "a'b"}},
	},
	{
		name: "peer/execute double quoted (PeerDB)",
		sql:  `EXECUTE pg("SELECT 'a', ""b"" FROM t")`,
		want: []Statement{&ExecutePeer{Text: `EXECUTE pg("SELECT 'a', ""b"" FROM t")`, Peer: "pg", PeerPos: 9, Query: `SELECT 'a', "b" FROM t`}},
	},
	{
		name: "peer/execute double quoted longer than a name is not truncated",
		sql:  `EXECUTE pg("SELECT 1 AS a_column_name_that_is_long, 2 AS another_long_column_name, 3 AS c")`,
		want: []Statement{&ExecutePeer{Text: `EXECUTE pg("SELECT 1 AS a_column_name_that_is_long, 2 AS another_long_column_name, 3 AS c")`,
			Peer: "pg", PeerPos: 9, Query: "SELECT 1 AS a_column_name_that_is_long, 2 AS another_long_column_name, 3 AS c"}},
	},
	{
		name: "peer/execute double quoted then more is a prepared statement",
		sql:  `EXECUTE pg("a", "b")`,
		want: []Statement{pass(`EXECUTE pg("a", "b")`, 0)},
	},
	{
		name: "peer/execute with numbers is a prepared statement",
		sql:  "EXECUTE stmt(1, 2)",
		want: []Statement{pass("EXECUTE stmt(1, 2)", 0)},
	},
	{
		name: "peer/execute with two strings is a prepared statement",
		sql:  "EXECUTE pg('a', 'b')",
		want: []Statement{pass("EXECUTE pg('a', 'b')", 0)},
	},
	{
		name: "peer/execute without arguments is a prepared statement",
		sql:  "EXECUTE mirror",
		want: []Statement{pass("EXECUTE mirror", 0)},
	},
}

var mirrorCases = []parseCase{
	{
		name: "mirror/pairs",
		sql:  `CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.a:public.b, c:"D"."E")`,
		want: []Statement{&CreateMirror{
			Text: `CREATE MIRROR m FROM src TO dst WITH TABLE MAPPING (public.a:public.b, c:"D"."E")`,
			Name: "m", NamePos: 15, Source: "src", SourcePos: 22, Destination: "dst", DestPos: 29,
			Mappings: []TableMapping{
				{Source: qn("public", "a", 53), Destination: qn("public", "b", 62), Pos: 53},
				{Source: qn("", "c", 72), Destination: qn("D", "E", 74), Pos: 72},
			},
		}},
	},
	{
		name: "mirror/braces and options",
		sql: "create mirror if not exists m from src to dst with table mapping " +
			`({FROM: s.t, To: d.t, key: id, exclude: [a, "B"], order_by: []}, {to: x, from: y}) ` +
			"with (do_initial_copy = true, max_batch_size = 1000)",
		want: []Statement{&CreateMirror{
			Text: "create mirror if not exists m from src to dst with table mapping " +
				`({FROM: s.t, To: d.t, key: id, exclude: [a, "B"], order_by: []}, {to: x, from: y}) ` +
				"with (do_initial_copy = true, max_batch_size = 1000)",
			IfNotExists: true,
			Name:        "m", NamePos: 29, Source: "src", SourcePos: 36, Destination: "dst", DestPos: 43,
			Mappings: []TableMapping{
				{
					Source: qn("s", "t", 74), Destination: qn("d", "t", 83),
					PartitionKey: "id", Exclude: []string{"a", "B"}, OrderBy: []string{}, Pos: 67,
				},
				{Source: qn("", "y", 145), Destination: qn("", "x", 136), Pos: 131},
			},
			Options: Options{
				opt("do_initial_copy", 155, boolv("true", 173)),
				opt("max_batch_size", 179, num("1000", 196)),
			},
		}},
	},
	{
		name: "mirror/keywords as names",
		sql:  "CREATE MIRROR m FROM pg TO ch WITH TABLE MAPPING (public.user:public.order)",
		want: []Statement{&CreateMirror{
			Text: "CREATE MIRROR m FROM pg TO ch WITH TABLE MAPPING (public.user:public.order)",
			Name: "m", NamePos: 15, Source: "pg", SourcePos: 22, Destination: "ch", DestPos: 28,
			Mappings: []TableMapping{{Source: qn("public", "user", 51), Destination: qn("public", "order", 63), Pos: 51}},
		}},
	},
	{
		name: "mirror/quoted brace key",
		sql:  `CREATE MIRROR m FROM s TO d WITH TABLE MAPPING ({"from": a, to: b})`,
		want: []Statement{&CreateMirror{
			Text: `CREATE MIRROR m FROM s TO d WITH TABLE MAPPING ({"from": a, to: b})`,
			Name: "m", NamePos: 15, Source: "s", SourcePos: 22, Destination: "d", DestPos: 27,
			Mappings: []TableMapping{{Source: qn("", "a", 58), Destination: qn("", "b", 65), Pos: 49}},
		}},
	},
	{
		name: "mirror/drop",
		sql:  "DROP MIRROR IF EXISTS m WITH (drop_destination = true)",
		want: []Statement{&DropMirror{
			Text:     "DROP MIRROR IF EXISTS m WITH (drop_destination = true)",
			IfExists: true, Name: "m", NamePos: 23,
			Options: Options{opt("drop_destination", 31, boolv("true", 50))},
		}},
	},
	{
		name: "mirror/drop plain",
		sql:  "drop mirror M",
		want: []Statement{&DropMirror{Text: "drop mirror M", Name: "m", NamePos: 13}},
	},
	{
		name: "mirror/pause",
		sql:  "PAUSE MIRROR m",
		want: []Statement{&PauseMirror{Text: "PAUSE MIRROR m", Name: "m", NamePos: 14}},
	},
	{
		name: "mirror/pause if exists",
		sql:  `pause mirror if exists "M"`,
		want: []Statement{&PauseMirror{Text: `pause mirror if exists "M"`, IfExists: true, Name: "M", NamePos: 24}},
	},
	{
		name: "mirror/resume",
		sql:  "RESUME MIRROR m",
		want: []Statement{&ResumeMirror{Text: "RESUME MIRROR m", Name: "m", NamePos: 15}},
	},
	{
		name: "mirror/pause table",
		sql:  "PAUSE MIRROR m TABLE public.users",
		want: []Statement{&PauseMirror{Text: "PAUSE MIRROR m TABLE public.users", Name: "m", NamePos: 14,
			Table: &QualifiedName{Schema: "public", Name: "users", Pos: 22}}},
	},
	{
		name: "mirror/resume table",
		sql:  `resume mirror m table "Users"`,
		want: []Statement{&ResumeMirror{Text: `resume mirror m table "Users"`, Name: "m", NamePos: 15,
			Table: &QualifiedName{Name: "Users", Pos: 23}}},
	},
	{
		name: "mirror/resume if exists",
		sql:  "Resume Mirror If Exists m",
		want: []Statement{&ResumeMirror{Text: "Resume Mirror If Exists m", IfExists: true, Name: "m", NamePos: 25}},
	},
	{
		name: "mirror/resync",
		sql:  "RESYNC MIRROR m WITH (strategy = swap)",
		want: []Statement{&ResyncMirror{
			Text: "RESYNC MIRROR m WITH (strategy = swap)", Name: "m", NamePos: 15,
			Options: Options{opt("strategy", 23, word("swap", 34))},
		}},
	},
	{
		name: "mirror/resync if exists",
		sql:  "RESYNC MIRROR IF EXISTS m",
		want: []Statement{&ResyncMirror{Text: "RESYNC MIRROR IF EXISTS m", IfExists: true, Name: "m", NamePos: 25}},
	},
	{
		name: "mirror/resync table",
		sql:  "RESYNC TABLE m.public.users",
		want: []Statement{&ResyncTable{Text: "RESYNC TABLE m.public.users", Mirror: "m", NamePos: 14, Table: qn("public", "users", 16)}},
	},
	{
		name: "mirror/resync table quoted with options",
		sql:  `resync table "M"."S"."T" with (x = 1)`,
		want: []Statement{&ResyncTable{
			Text: `resync table "M"."S"."T" with (x = 1)`, Mirror: "M", NamePos: 14, Table: qn("S", "T", 18),
			Options: Options{opt("x", 32, num("1", 36))},
		}},
	},
	{
		name: "mirror/resync table two parts",
		sql:  "RESYNC TABLE m.users",
		want: []Statement{&ResyncTable{Text: "RESYNC TABLE m.users", Mirror: "m", NamePos: 14, Table: qn("", "users", 16)}},
	},
	{
		name: "mirror/execute",
		sql:  "EXECUTE MIRROR m",
		want: []Statement{&ExecuteMirror{Text: "EXECUTE MIRROR m", Name: "m", NamePos: 16}},
	},
}

var scriptCases = []parseCase{
	{
		name: "script/mixed with standard sql",
		sql:  "SELECT 1; CREATE PEER p FROM postgres; SELECT 2",
		want: []Statement{
			pass("SELECT 1", 0),
			&CreatePeer{Text: "CREATE PEER p FROM postgres", Name: "p", NamePos: 23, Type: PeerPostgres, TypePos: 30},
			pass("SELECT 2", 39),
		},
	},
	{
		name: "script/semicolons inside strings",
		sql:  "CREATE PEER p FROM postgres WITH (password = 'a;b', x = $$;$$);SELECT ';'",
		want: []Statement{
			&CreatePeer{
				Text: "CREATE PEER p FROM postgres WITH (password = 'a;b', x = $$;$$)",
				Name: "p", NamePos: 13, Type: PeerPostgres, TypePos: 20,
				Options: Options{opt("password", 35, str("a;b", 46)), opt("x", 53, str(";", 57))},
			},
			pass("SELECT ';'", 63),
		},
	},
	{
		name: "script/comments around a statement",
		sql:  "-- leading\n/* block */ PAUSE MIRROR m -- trailing\n;",
		want: []Statement{&PauseMirror{Text: "PAUSE MIRROR m", Name: "m", NamePos: 37}},
	},
	{
		name: "script/comment inside a statement",
		sql:  "CREATE /* x */ PEER p FROM postgres",
		want: []Statement{&CreatePeer{Text: "CREATE /* x */ PEER p FROM postgres", Name: "p", NamePos: 21, Type: PeerPostgres, TypePos: 28}},
	},
	{
		name: "script/empty statements",
		sql:  ";; SELECT 1;;\n",
		want: []Statement{pass("SELECT 1", 3)},
	},
	{
		name: "script/only comments",
		sql:  "-- nothing\n/* at all */ ;",
		want: []Statement{},
	},
	{
		name: "script/empty",
		sql:  " \n\t",
		want: []Statement{},
	},
	{
		name: "script/sluice words later in standard sql",
		sql:  "SELECT * FROM mirrors; CREATE TABLE peer (mirror int); DROP TABLE mirror; select 'pause mirror m'",
		want: []Statement{
			pass("SELECT * FROM mirrors", 0),
			pass("CREATE TABLE peer (mirror int)", 23),
			pass("DROP TABLE mirror", 55),
			pass("select 'pause mirror m'", 74),
		},
	},
	{
		name: "script/multi-byte text",
		sql:  `SELECT 'ü'; DROP PEER "é"; SELECT 'é'`,
		want: []Statement{
			pass("SELECT 'ü'", 0),
			&DropPeer{Text: `DROP PEER "é"`, Name: "é", NamePos: 23},
			pass("SELECT 'é'", 29),
		},
	},
	{
		name: "script/replacement character is valid text",
		sql:  "SELECT '\uFFFD'",
		want: []Statement{pass("SELECT '\uFFFD'", 0)},
	},
	{
		name: "script/sql-standard function body",
		sql:  "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; PAUSE MIRROR m",
		want: []Statement{
			pass("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END", 0),
			&PauseMirror{Text: "PAUSE MIRROR m", Name: "m", NamePos: 97},
		},
	},
	{
		name: "script/procedure body with case",
		sql:  "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END; SELECT 3",
		want: []Statement{
			pass("CREATE OR REPLACE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END", 0),
			pass("SELECT 3", 97),
		},
	},
	{
		name: "script/routine named begin",
		sql:  "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; SELECT 2",
		want: []Statement{
			pass("CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1", 0),
			pass("SELECT 2", 59),
		},
	},
	{
		name: "script/rule with several actions",
		sql:  "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); RESUME MIRROR m",
		want: []Statement{
			pass("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))", 0),
			&ResumeMirror{Text: "RESUME MIRROR m", Name: "m", NamePos: 109},
		},
	},
}

func TestParse(t *testing.T) {
	for _, group := range [][]parseCase{peerCases, mirrorCases, scriptCases} {
		for _, tc := range group {
			t.Run(tc.name, func(t *testing.T) {
				got, err := Parse(tc.sql)
				if err != nil {
					t.Fatalf("Parse(%q): %v (pos %d)", tc.sql, err, errPos(err))
				}
				got = withoutTrees(t, got)
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("Parse(%q)\n got: %s\nwant: %s", tc.sql, dump(got), dump(tc.want))
				}
			})
		}
	}
}

// withoutTrees checks that every Passthrough has its parse tree and returns
// copies without it, for comparison.
func withoutTrees(t *testing.T, stmts []Statement) []Statement {
	t.Helper()
	out := make([]Statement, len(stmts))
	for i, s := range stmts {
		if p, ok := s.(*Passthrough); ok {
			if p.Stmt.GetStmt().GetNode() == nil {
				t.Errorf("statement %d (%q): no parse tree", i, p.Text)
			}
			s = &Passthrough{Text: p.Text, Offset: p.Offset}
		}
		out[i] = s
	}
	return out
}

func dump(stmts []Statement) string {
	var b strings.Builder
	for _, s := range stmts {
		fmt.Fprintf(&b, "\n  %T%+v", s, s)
	}
	return b.String()
}

func errPos(err error) Pos {
	var se *SyntaxError
	if errors.As(err, &se) {
		return se.Pos
	}
	return -1
}

func TestPassthroughTree(t *testing.T) {
	got, err := Parse("SELECT 1; SELECT x FROM t; EXECUTE q(1, 2)")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d statements, want 3", len(got))
	}
	sel := got[1].(*Passthrough)
	ref := sel.Stmt.GetStmt().GetSelectStmt().GetTargetList()[0].GetResTarget().GetVal().GetColumnRef()
	if ref == nil || ref.GetLocation() != 7 {
		t.Errorf("column x: got %v, want a column reference at offset 7 of the statement's text", ref)
	}
	if sel.Text[ref.GetLocation():ref.GetLocation()+1] != "x" {
		t.Errorf("location %d of %q is not x", ref.GetLocation(), sel.Text)
	}
	if got[2].(*Passthrough).Stmt.GetStmt().GetExecuteStmt().GetName() != "q" {
		t.Errorf("EXECUTE q(1, 2): got %v, want an ExecuteStmt for q", got[2].(*Passthrough).Stmt)
	}
}

func TestValueKindString(t *testing.T) {
	for k, want := range map[ValueKind]string{
		StringValue: "string", NumberValue: "number", BoolValue: "boolean", IdentValue: "identifier", 9: "ValueKind(9)",
	} {
		if got := k.String(); got != want {
			t.Errorf("ValueKind(%d).String() = %q, want %q", int(k), got, want)
		}
	}
}
