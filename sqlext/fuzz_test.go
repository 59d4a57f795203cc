package sqlext

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds adds inputs that reach corners the test tables do not.
var fuzzSeeds = []string{
	"",
	";",
	"CREATE",
	"EXECUTE",
	"EXECUTE mirror(",
	"EXECUTE pg(U&'x' UESCAPE '!')",
	"EXECUTE pg(U&'x' UESCAPE)",
	"CREATE PEER p FROM postgres WITH (a = U&'\\0041' UESCAPE '\\')",
	"CREATE MIRROR m FROM s TO d WITH TABLE MAPPING ({from: a.b, to: c.d, key: k, exclude: [x], order_by: [y]}, e:f)",
	"CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1; SELECT 2",
	"CREATE PROCEDURE p() BEGIN ATOMIC END; END; SELECT 1",
	"SELECT ); PAUSE MIRROR m",
	"SELECT $1; EXECUTE q($$a$$)",
	"/* unterminated",
	"SELECT 1 -- no newline",
	"SELECT E'\\x41', 'a'\n'b'; RESUME MIRROR \"\u00e9\"",
	"\u00a0PAUSE MIRROR m",
	"RESYNC TABLE \"a\"\"b\".c.d WITH (x = 'y')",
	// Deep and wide statements (see limits.go): the fuzzer looks for a tree
	// deeper than the depth estimate allows.
	"SELECT 1" + strings.Repeat("+1", 2500),
	"SELECT " + strings.Repeat("(", 1100) + "1" + strings.Repeat(")", 1100),
	"SELECT " + strings.Repeat("ARRAY[", 700) + "1" + strings.Repeat("]", 700),
	"SELECT " + strings.Repeat("CASE WHEN a THEN ", 300) + "1" + strings.Repeat(" END", 300),
	"SELECT 1" + strings.Repeat(" UNION SELECT 1", 300),
	"SELECT * FROM t" + strings.Repeat(" JOIN t ON a AND b", 200),
	"SELECT 1 WHERE a = 1" + strings.Repeat(" OR a = 1 AND b BETWEEN 1 AND 2", 200),
}

// FuzzParse checks that Parse never panics, that every error is a
// *SyntaxError inside the input, and that every statement's Text is a piece
// of the input that parses alone into a statement of the same kind.
func FuzzParse(f *testing.F) {
	for _, group := range [][]parseCase{peerCases, mirrorCases, scriptCases} {
		for _, tc := range group {
			f.Add(tc.sql)
		}
	}
	for _, group := range [][]errorCase{inputErrors, peerErrors, mirrorErrors} {
		for _, tc := range group {
			f.Add(tc.sql)
		}
	}
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		stmts, err := Parse(sql)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q): error %T %v is not a *SyntaxError", sql, err, err)
			}
			if max := Pos(utf8.RuneCountInString(sql) + 1); se.Pos < 0 || se.Pos > max {
				t.Fatalf("Parse(%q): error %q at %d, outside 0..%d", sql, se.Msg, se.Pos, max)
			}
			if stmts != nil {
				t.Fatalf("Parse(%q): statements returned with error %v", sql, err)
			}
			return
		}
		for _, s := range stmts {
			text := s.SQL()
			if text == "" || !strings.Contains(sql, text) {
				t.Fatalf("Parse(%q): statement text %q is not in the input", sql, text)
			}
			if p, ok := s.(*Passthrough); ok {
				if p.Stmt == nil || p.Offset < 0 || p.Offset+len(text) > len(sql) || sql[p.Offset:p.Offset+len(text)] != text {
					t.Fatalf("Parse(%q): passthrough %q has offset %d or no tree", sql, text, p.Offset)
				}
			}
			again, err := Parse(text)
			if err != nil {
				t.Fatalf("Parse(%q): statement %q alone fails: %v", sql, text, err)
			}
			if len(again) != 1 || reflect.TypeOf(again[0]) != reflect.TypeOf(s) {
				t.Fatalf("Parse(%q): statement %q (%T) alone gives %s", sql, text, s, dump(again))
			}
		}
		checkEstimate(t, sql)
	})
}
