package sqlext

import (
	"errors"
	"reflect"
	"testing"
)

// validateCases are VALIDATE MIRROR's parses, in a file of their own.
var validateCases = []parseCase{
	{
		name: "validate/plain",
		sql:  "VALIDATE MIRROR m",
		want: []Statement{&ValidateMirror{Text: "VALIDATE MIRROR m", Name: "m", NamePos: 17}},
	},
	{
		name: "validate/table",
		sql:  "validate mirror m table public.users",
		want: []Statement{&ValidateMirror{Text: "validate mirror m table public.users", Name: "m", NamePos: 17,
			Table: qn("public", "users", 25)}},
	},
	{
		name: "validate/table without schema, options",
		sql:  `VALIDATE MIRROR "M" TABLE "Users" WITH (mode = 'checksum')`,
		want: []Statement{&ValidateMirror{Text: `VALIDATE MIRROR "M" TABLE "Users" WITH (mode = 'checksum')`, Name: "M", NamePos: 17,
			Table: qn("", "Users", 27), Options: Options{opt("mode", 41, str("checksum", 48))}}},
	},
	{
		name: "validate/options only",
		sql:  "VALIDATE MIRROR m WITH (mode = count); SELECT 1",
		want: []Statement{
			&ValidateMirror{Text: "VALIDATE MIRROR m WITH (mode = count)", Name: "m", NamePos: 17,
				Options: Options{opt("mode", 25, word("count", 32))}},
			pass("SELECT 1", 39),
		},
	},
}

// validateErrors are VALIDATE MIRROR's refused parses.
var validateErrors = []errorCase{
	{"validate/no mirror keyword", "VALIDATE m", `expected MIRROR after VALIDATE, found "m"`, 10},
	{"validate/no name", "VALIDATE MIRROR", "expected mirror name, found end of input", 16},
	{"validate/garbage", "VALIDATE MIRROR m x", `expected TABLE or WITH or end of statement, found "x"`, 19},
	{"validate/garbage after table", "VALIDATE MIRROR m TABLE t x", `expected WITH or end of statement, found "x"`, 27},
	{"validate/no table name", "VALIDATE MIRROR m TABLE", "expected table name after TABLE, found end of input", 24},
	{"validate/three parts", "VALIDATE MIRROR m TABLE a.b.c", "improper qualified name (too many dotted names): a.b.c", 25},
}

func TestParseValidate(t *testing.T) {
	for _, tc := range validateCases {
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
	for _, tc := range validateErrors {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.sql)
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error %v, want a *SyntaxError", tc.sql, err)
			}
			if se.Msg != tc.msg || se.Pos != tc.pos {
				t.Errorf("Parse(%q)\n got error %q at %d\nwant error %q at %d", tc.sql, se.Msg, se.Pos, tc.msg, tc.pos)
			}
		})
	}
}
