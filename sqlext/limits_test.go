package sqlext

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// nest returns open n times, then mid, then close n times.
func nest(open, mid, close string, n int) string {
	return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
}

// chain returns head followed by link n times.
func chain(head, link string, n int) string {
	return head + strings.Repeat(link, n)
}

// listOf returns head, then item(i) for i in 0..n-1 joined by sep, then tail.
func listOf(head, sep, tail string, n int, item func(i int) string) string {
	var b strings.Builder
	b.WriteString(head)
	for i := range n {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(item(i))
	}
	b.WriteString(tail)
	return b.String()
}

// tooDeep are statements that crashed the process (SIGSEGV in pg_query's C
// code, on an 8 MB stack) or failed with "proto: exceeded maximum recursion
// depth" before the limits, and now get 54001 without reaching pg_query's
// parser.
var tooDeep = []struct{ name, sql string }{
	{"plus 30k terms", chain("SELECT 1", "+1", 30_000-1)},
	{"plus 100k terms", chain("SELECT 1", "+1", 100_000-1)},
	{"plus 1M terms", chain("SELECT 1", "+1", 1_000_000-1)},
	{"plus 6M terms", chain("SELECT 1", "+1", 6_000_000-1)},
	{"plus 10k terms", chain("SELECT 1", "+1", 10_000-1)},
	{"parentheses 30k", "SELECT " + nest("(", "1", ")", 30_000)},
	{"parentheses 1.5k", "SELECT " + nest("(", "1", ")", 1_500)},
	{"ARRAY 30k", "SELECT " + nest("ARRAY[", "1", "]", 30_000)},
	{"ARRAY 1k", "SELECT " + nest("ARRAY[", "1", "]", 1_000)},
	{"CASE 10k", "SELECT " + nest("CASE WHEN true THEN ", "1", " END", 10_000)},
	{"CASE 1k", "SELECT " + nest("CASE WHEN true THEN ", "1", " END", 1_000)},
	{"UNION 30k", chain("SELECT 1", " UNION SELECT 1", 30_000)},
	{"INTERSECT 50k", chain("SELECT 1", " INTERSECT SELECT 1", 50_000)},
	{"casts 30k", chain("SELECT 1", "::int", 30_000)},
	{"NOT 30k", "SELECT " + strings.Repeat("NOT ", 30_000) + "true"},
	{"unary minus 30k", "SELECT " + strings.Repeat("- ", 30_000) + "x FROM t"},
	{"subqueries 5k", "SELECT " + nest("(SELECT ", "1", ")", 5_000)},
	{"JOINs 30k", chain("SELECT * FROM t", " JOIN t ON true", 30_000)},
	{"COLLATE 30k", chain("SELECT 'a'", ` COLLATE "C"`, 30_000)},
	{"AT TIME ZONE 30k", chain("SELECT now()", ` AT TIME ZONE 'UTC'`, 30_000)},
	{"IS NOT NULL 30k", chain("SELECT true", " IS NOT NULL", 30_000)},
	{"json operators 30k", chain("SELECT x", "->'a'", 30_000) + " FROM t"},
	{"subqueries around a chain", "SELECT " + nest("(SELECT ", chain("1", "+1", 1_000), ")", 400)},
	{"chain in WHERE of a deep OR", "SELECT 1 WHERE a OR " + chain("1", "+1", 3_000)},
	{"second statement", "SELECT 1; " + chain("SELECT 1", "+1", 30_000)},
	{"in a CREATE MIRROR", "CREATE MIRROR m FROM s TO d WITH TABLE MAPPING " + nest("(", "a:b", ")", 3_000)},
}

func TestParseRefusesDeepStatements(t *testing.T) {
	for _, tc := range tooDeep {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := Parse(tc.sql)
			var se *SyntaxError
			if !errors.As(err, &se) || se.Code != pgerrcode.StatementTooComplex {
				t.Fatalf("got %d statements, error %v; want SQLSTATE 54001", len(stmts), err)
			}
			if !strings.HasPrefix(se.Msg, "statement is too") || se.Hint == "" {
				t.Errorf("message %q, hint %q", se.Msg, se.Hint)
			}
			if _, err := ParseTree(tc.sql); !errors.As(err, &se) || se.Code != pgerrcode.StatementTooComplex {
				t.Errorf("ParseTree: %v, want SQLSTATE 54001", err)
			}
		})
	}
}

// TestDeepErrorPosition checks that the error points into the statement
// that is too deep.
func TestDeepErrorPosition(t *testing.T) {
	sql := "SELECT 1;\n" + chain("SELECT 1", "+1", 30_000)
	_, err := Parse(sql)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Code != pgerrcode.StatementTooComplex {
		t.Fatalf("error %v, want 54001", err)
	}
	if first := Pos(len("SELECT 1;\n") + 1); se.Pos <= first || int(se.Pos) > len(sql) {
		t.Errorf("position %d, want inside the second statement (after %d)", se.Pos, first)
	}
	if _, err := Parse(chain("SELECT 1", "+1", 2_000_000)); !errors.As(err, &se) || se.Pos != 0 ||
		!strings.HasPrefix(se.Msg, "statement is too large") {
		t.Errorf("a query too large: %v at %d", err, se.Pos)
	}
}

// bigButFlat are large statements that real applications send; Postgres'
// grammar keeps them flat and they must pass.
var bigButFlat = []struct{ name, sql string }{
	{"INSERT 100k rows", listOf("INSERT INTO t VALUES ", ", ", "", 100_000, func(i int) string {
		return fmt.Sprintf("(%d, 'row %d', NULL)", i, i)
	})},
	{"OR 20k terms", listOf("SELECT * FROM t WHERE ", " OR ", "", 20_000, func(i int) string {
		return fmt.Sprintf("id = %d", i)
	})},
	{"AND 20k terms", listOf("SELECT * FROM t WHERE ", " AND ", "", 20_000, func(i int) string {
		return fmt.Sprintf("id <> %d", i)
	})},
	{"OR of ANDs 10k", listOf("SELECT * FROM t WHERE ", " OR ", "", 10_000, func(i int) string {
		return fmt.Sprintf("(a = %d AND b = 'x') AND c BETWEEN %d AND %d", i, i, i+1)
	})},
	{"UNION ALL 1000", listOf("", " UNION ALL ", "", 1_000, func(i int) string {
		return fmt.Sprintf("SELECT %d AS n, 'v%d'::text AS v", i, i)
	})},
	{"CASE 5000 WHENs", listOf("SELECT CASE x", "", " ELSE 'other' END FROM t", 5_000, func(i int) string {
		return fmt.Sprintf(" WHEN %d THEN 'v%d'", i, i)
	})},
	{"IN list 100k", listOf("SELECT * FROM t WHERE id IN (", ", ", ")", 100_000, func(i int) string {
		return fmt.Sprint(i)
	})},
	{"JOIN 100 tables", listOf("SELECT * FROM t0", "", "", 100, func(i int) string {
		return fmt.Sprintf(" LEFT OUTER JOIN t%d ON t%d.id = t0.id AND t%d.x IS NOT NULL", i+1, i+1, i+1)
	})},
	{"plus 900 terms", chain("SELECT 1", "+1", 900)},
	{"parentheses 500", "SELECT " + nest("(", "1", ")", 500)},
	{"subqueries 300", "SELECT " + nest("(SELECT ", "1", ")", 300)},
	{"many statements", strings.Repeat(chain("SELECT 1", "+1", 500)+";\n", 200)},
	{"long string literal", "SELECT '" + strings.Repeat("x", 20<<20) + "'"},
}

func TestParseAcceptsBigFlatStatements(t *testing.T) {
	for _, tc := range bigButFlat {
		t.Run(tc.name, func(t *testing.T) {
			stmts, err := Parse(tc.sql)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(stmts) == 0 {
				t.Fatal("no statements")
			}
		})
	}
}

// treeDepth returns the nesting depth of a protobuf message.
func treeDepth(m protoreflect.Message) int {
	d := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := range l.Len() {
				d = max(d, treeDepth(l.Get(i).Message()))
			}
		case fd.Message() != nil && !fd.IsMap():
			d = max(d, treeDepth(v.Message()))
		}
		return true
	})
	return d + 1
}

// maxTreeRatio bounds the parse tree's depth (protobuf messages, what
// pg_query's C code recurses over) per unit of estimateDepth: measured at 2
// at most (an operator is an A_Expr in a Node; a subquery level, counted as
// 3, is 6 messages deep).
const maxTreeRatio = 3

// checkEstimate fails when a statement's parse tree is deeper than its
// estimate allows: the estimate must never err downwards.
func checkEstimate(t *testing.T, sql string) {
	t.Helper()
	toks, err := scan(sql)
	if err != nil {
		return
	}
	for _, st := range split(toks) {
		text := sql[st[0].start:st[len(st)-1].end]
		est, _ := estimateDepth(st)
		if est > MaxDepth {
			continue
		}
		res, err := pg_query.Parse(text)
		if err != nil {
			continue
		}
		if d := treeDepth(res.ProtoReflect()); d > maxTreeRatio*est+8 {
			t.Fatalf("%.200q: tree depth %d, estimate %d", text, d, est)
		}
	}
}

func TestEstimateBoundsTreeDepth(t *testing.T) {
	cases := []string{
		chain("SELECT 1", "+1", 600),
		chain("SELECT 1", "::int", 600),
		chain("SELECT 1", " UNION SELECT 1", 600),
		chain("SELECT * FROM t", " JOIN t ON true", 600),
		chain("SELECT * FROM t", " CROSS JOIN t", 600),
		"SELECT * FROM t" + strings.Repeat(" JOIN t", 300) + strings.Repeat(" ON a AND b", 300),
		"SELECT " + nest("(SELECT ", "1", ")", 300),
		"SELECT " + nest("EXISTS(SELECT ", "1", ")", 300),
		"SELECT " + nest("(WITH a AS (SELECT 1) SELECT ", "1", ")", 200),
		"SELECT " + nest("ARRAY[", "1", "]", 600),
		"SELECT " + nest("abs(", "1", ")", 600),
		"SELECT " + nest("ROW(", "1", ")", 600),
		"SELECT " + nest("CASE WHEN true THEN ", "1", " END", 300),
		"SELECT " + nest("CASE x WHEN 1 THEN ", "1", " ELSE 2 END", 300),
		"SELECT " + nest("1 IN (", "1", ")", 300),
		"SELECT " + nest("1 = ANY(SELECT 1", "", ")", 300),
		"SELECT " + strings.Repeat("NOT ", 900) + "true",
		"SELECT " + strings.Repeat("- ", 900) + "x",
		chain("SELECT true", " IS NOT NULL", 600),
		chain("SELECT 'a'", ` COLLATE "C"`, 600),
		chain("SELECT x", " AT TIME ZONE 'UTC'", 600),
		chain("SELECT x", "[1]", 600),
		"SELECT 1 " + strings.Repeat("BETWEEN 1 AND ", 300) + "1",
		"SELECT " + nest("(1 BETWEEN ", "1 AND 1", ")", 300),
		"SELECT " + nest("(a OR b AND ", "c", ")", 300),
		"SELECT " + nest("(SELECT 1 UNION ", "SELECT 1", ")", 300),
		"SELECT " + nest("(NOT ", "a", " IS NULL)", 300),
		"SELECT " + nest("f(x => ", "1", ")", 300),
		"SELECT " + nest("COALESCE(1, ", "1", ")", 300),
		"SELECT 1 FROM " + nest("(SELECT * FROM ", "t", ") s", 200),
		"SELECT 1 FROM " + nest("(t JOIN ", "t ON true", ") ON true", 300),
		"MERGE INTO t USING s ON t.id = s.id" + strings.Repeat(" WHEN MATCHED AND t.a = 1 THEN UPDATE SET a = 1 + 1", 100),
		"UPDATE t SET " + listOf("", ", ", "", 200, func(i int) string { return fmt.Sprintf("c%d = c%d + 1", i, i) }),
	}
	for _, sql := range cases {
		checkEstimate(t, sql)
	}
	for _, tc := range bigButFlat {
		if len(tc.sql) < 1<<20 {
			checkEstimate(t, tc.sql)
		}
	}
}

// TestScanMatchesPgQuery checks that scan, which reads the scanner's
// protobuf output in place, finds the tokens pg_query.Scan finds.
func TestScanMatchesPgQuery(t *testing.T) {
	inputs := append([]string{"SELECT 1 -- c\n, /* c */ 'a' 'b', $1, E'\\n', U&'\\0041', x::int[]"}, fuzzSeeds...)
	for _, group := range [][]parseCase{peerCases, mirrorCases, scriptCases} {
		for _, tc := range group {
			inputs = append(inputs, tc.sql)
		}
	}
	for _, in := range inputs {
		toks, err := scan(in)
		res, perr := pg_query.Scan(in)
		if (err != nil) != (perr != nil) {
			t.Fatalf("%q: scan error %v, pg_query.Scan error %v", in, err, perr)
		}
		if err != nil {
			continue
		}
		var want []token
		for _, st := range res.GetTokens() {
			if st.Token != pg_query.Token_SQL_COMMENT && st.Token != pg_query.Token_C_COMMENT {
				want = append(want, token{kind: st.Token, kw: st.KeywordKind, start: int(st.Start), end: int(st.End)})
			}
		}
		if len(toks) != len(want)+1 {
			t.Fatalf("%q: %d tokens, want %d", in, len(toks)-1, len(want))
		}
		for i, w := range want {
			if g := toks[i]; g.kind != w.kind || g.kw != w.kw || g.start != w.start || g.end != w.end {
				t.Fatalf("%q: token %d is %v, want %v", in, i, g, w)
			}
		}
	}
}
