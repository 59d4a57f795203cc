package sqlext

import (
	"reflect"
	"testing"
)

// ALTER MIRROR's parse and error cases. They live in their own file (and
// join FuzzParse's seeds from init) so that other statements' tests are
// not touched.

var alterCases = []parseCase{
	{
		name: "alter mirror/set",
		sql:  "ALTER MIRROR m SET (max_batch_size = 50000, sync_interval = 5)",
		want: []Statement{&AlterMirror{
			Text: "ALTER MIRROR m SET (max_batch_size = 50000, sync_interval = 5)", Name: "m", NamePos: 14,
			Action: AlterSet, ActionPos: 16,
			Options: Options{opt("max_batch_size", 21, num("50000", 38)), opt("sync_interval", 45, num("5", 61))},
		}},
	},
	{
		name: "alter mirror/reset",
		sql:  "alter mirror m reset (Sync_Interval, max_batch_size)",
		want: []Statement{&AlterMirror{
			Text: "alter mirror m reset (Sync_Interval, max_batch_size)", Name: "m", NamePos: 14,
			Action: AlterReset, ActionPos: 16,
			Reset: []OptionName{{Key: "sync_interval", Pos: 23}, {Key: "max_batch_size", Pos: 38}},
		}},
	},
	{
		name: "alter mirror/if exists, quoted name, string value",
		sql:  `ALTER MIRROR IF EXISTS "M" SET (resync_strategy = 'swap'); SELECT 1`,
		want: []Statement{
			&AlterMirror{
				Text: `ALTER MIRROR IF EXISTS "M" SET (resync_strategy = 'swap')`, IfExists: true, Name: "M", NamePos: 24,
				Action: AlterSet, ActionPos: 28,
				Options: Options{opt("resync_strategy", 33, str("swap", 51))},
			},
			pass("SELECT 1", 59),
		},
	},
	{
		name: "alter mirror/a mirror named if",
		sql:  "ALTER MIRROR if RESET (x)",
		want: []Statement{&AlterMirror{
			Text: "ALTER MIRROR if RESET (x)", Name: "if", NamePos: 14, Action: AlterReset, ActionPos: 17,
			Reset: []OptionName{{Key: "x", Pos: 24}},
		}},
	},
	{
		name: "alter mirror/add table",
		sql:  "ALTER MIRROR m ADD TABLE MAPPING (public.a:b, {from: c, to: d, exclude: [x]}) WITH (do_initial_copy = false)",
		want: []Statement{&AlterMirror{
			Text: "ALTER MIRROR m ADD TABLE MAPPING (public.a:b, {from: c, to: d, exclude: [x]}) WITH (do_initial_copy = false)",
			Name: "m", NamePos: 14, Action: AlterAddTable, ActionPos: 16,
			Mappings: []TableMapping{
				{Source: QualifiedName{Schema: "public", Name: "a", Pos: 35}, Destination: QualifiedName{Name: "b", Pos: 44}, Pos: 35},
				{Source: QualifiedName{Name: "c", Pos: 54}, Destination: QualifiedName{Name: "d", Pos: 61}, Exclude: []string{"x"}, Pos: 47},
			},
			With: Options{{Key: "do_initial_copy", Pos: 85, Value: Value{Kind: BoolValue, Text: "false", Pos: 103}}},
		}},
	},
	{
		name: "alter mirror/drop table",
		sql:  "alter mirror if exists m drop table public.items",
		want: []Statement{&AlterMirror{
			Text: "alter mirror if exists m drop table public.items", IfExists: true, Name: "m", NamePos: 24,
			Action: AlterDropTable, ActionPos: 26, Table: QualifiedName{Schema: "public", Name: "items", Pos: 37},
		}},
	},
	{
		name: "alter mirror/other alter passes through",
		sql:  "ALTER TABLE mirror ADD COLUMN x int",
		want: []Statement{pass("ALTER TABLE mirror ADD COLUMN x int", 0)},
	},
}

var alterErrors = []errorCase{
	{"alter mirror/no name", "ALTER MIRROR", "expected mirror name, found end of input", 13},
	{"alter mirror/no action", "ALTER MIRROR m", "expected SET, RESET, ADD TABLE or DROP TABLE after mirror name, found end of input", 15},
	{"alter mirror/unknown action", "ALTER MIRROR m RENAME TO n", `expected SET, RESET, ADD TABLE or DROP TABLE after mirror name, found "RENAME"`, 16},
	{"alter mirror/add without table", "ALTER MIRROR m ADD MAPPING (a:b)", `expected TABLE MAPPING after ADD, found "MAPPING"`, 20},
	{"alter mirror/add without mapping", "ALTER MIRROR m ADD TABLE (a:b)", `expected MAPPING after ADD TABLE, found "("`, 26},
	{"alter mirror/add empty", "ALTER MIRROR m ADD TABLE MAPPING ()", `expected table mapping, found ")"`, 35},
	{"alter mirror/add trailing garbage", "ALTER MIRROR m ADD TABLE MAPPING (a:b) x", `expected WITH or end of statement, found "x"`, 40},
	{"alter mirror/drop without table", "ALTER MIRROR m DROP public.t", `expected TABLE after DROP, found "public"`, 21},
	{"alter mirror/drop no name", "ALTER MIRROR m DROP TABLE", `expected table name after DROP TABLE, found end of input`, 26},
	{"alter mirror/drop two tables", "ALTER MIRROR m DROP TABLE a, b", `expected WITH or end of statement, found ","`, 28},
	{"alter mirror/set without list", "ALTER MIRROR m SET max_batch_size = 1", `expected "(" after SET, found "max_batch_size"`, 20},
	{"alter mirror/set at end", "ALTER MIRROR m SET", `expected "(" after SET, found end of input`, 19},
	{"alter mirror/set empty", "ALTER MIRROR m SET ()", `expected option name, found ")"`, 21},
	{"alter mirror/set no value", "ALTER MIRROR m SET (sync_interval)", `expected "=" after option name "sync_interval", found ")"`, 34},
	{"alter mirror/set duplicate", "ALTER MIRROR m SET (a = 1, A = 2)", `option "a" specified more than once`, 28},
	{"alter mirror/set unclosed", "ALTER MIRROR m SET (a = 1", `expected "," or ")" after option value, found end of input`, 26},
	{"alter mirror/set trailing garbage", "ALTER MIRROR m SET (a = 1) WITH (b = 2)", `syntax error at or near "WITH"`, 28},
	{"alter mirror/reset without list", "ALTER MIRROR m RESET a", `expected "(" after RESET, found "a"`, 22},
	{"alter mirror/reset empty", "ALTER MIRROR m RESET ()", `expected option name, found ")"`, 23},
	{"alter mirror/reset with value", "ALTER MIRROR m RESET (a = 1)",
		`RESET takes option names without values, found "=" after option name "a"`, 25},
	{"alter mirror/reset duplicate", "ALTER MIRROR m RESET (a, b, A)", `option "a" specified more than once`, 29},
	{"alter mirror/reset no comma", "ALTER MIRROR m RESET (a b)", `expected "," or ")" after option name "a", found "b"`, 25},
	{"alter mirror/reset string", "ALTER MIRROR m RESET ('a')", `expected option name, found "'a'"`, 23},
	{"alter mirror/reset unclosed before next statement", "ALTER MIRROR m RESET (a; SELECT 1",
		`expected "," or ")" after option name "a", found ";"`, 24},
	{"alter mirror/trailing garbage", "ALTER MIRROR m RESET (a) x", `syntax error at or near "x"`, 26},
}

func init() {
	for _, tc := range alterCases {
		fuzzSeeds = append(fuzzSeeds, tc.sql)
	}
	for _, tc := range alterErrors {
		fuzzSeeds = append(fuzzSeeds, tc.sql)
	}
}

// TestParseAlterMirror runs alterCases as TestParse runs its groups.
func TestParseAlterMirror(t *testing.T) {
	for _, tc := range alterCases {
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

// TestParseAlterMirrorErrors checks alterErrors' exact messages and
// positions.
func TestParseAlterMirrorErrors(t *testing.T) {
	for _, tc := range alterErrors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.sql)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error %q at %d", tc.sql, dump(got), tc.msg, tc.pos)
			}
			se, ok := err.(*SyntaxError)
			if !ok {
				t.Fatalf("Parse(%q): error %T %v is not a *SyntaxError", tc.sql, err, err)
			}
			if se.Msg != tc.msg || se.Pos != tc.pos {
				t.Errorf("Parse(%q)\n got error %q at %d\nwant error %q at %d", tc.sql, se.Msg, se.Pos, tc.msg, tc.pos)
			}
		})
	}
}
