package executor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// deepStatements crashed the whole process before Sluice checked a
// statement's depth and size (SIGSEGV in pg_query's C code), or failed with
// "proto: exceeded maximum recursion depth".
func deepStatements() map[string]string {
	nest := func(open, mid, close string, n int) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	return map[string]string{
		"plus 30k terms":  "SELECT 1" + strings.Repeat("+1", 30_000-1),
		"plus 100k terms": "SELECT 1" + strings.Repeat("+1", 100_000-1),
		"plus 1M terms":   "SELECT 1" + strings.Repeat("+1", 1_000_000-1),
		"parentheses 30k": "SELECT " + nest("(", "1", ")", 30_000),
		"ARRAY 30k":       "SELECT " + nest("ARRAY[", "1", "]", 30_000),
		"CASE 10k":        "SELECT " + nest("CASE WHEN true THEN ", "1", " END", 10_000),
		"UNION 30k":       "SELECT 1" + strings.Repeat(" UNION SELECT 1", 30_000),
		"casts 30k":       "SELECT 1" + strings.Repeat("::int", 30_000),
		"EXECUTE peer":    "EXECUTE src('SELECT 1" + strings.Repeat("+1", 30_000) + "')",
	}
}

// TestDeepStatementRefused sends statements too deep or too large to parse
// through the simple and the extended protocol, and checks that each gets
// 54001 while the session, another session and a running mirror go on.
func TestDeepStatementRefused(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'before')")
	mustExec(t, f.conn, "CREATE MIRROR deep FROM src TO dst WITH TABLE MAPPING (public.t:public.t)")
	f.waitStatus(t, "deep", "RUNNING")
	waitEqual(t, f.src, f.dst, "public.t", "public.t", "id")

	pc := f.conn.PgConn()
	other := connect(t, f.s.URL()).PgConn()
	alive := func(t *testing.T, c *pgconn.PgConn) {
		t.Helper()
		res, err := c.Exec(ctx, "SELECT 41 + 1").ReadAll()
		if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "42" {
			t.Fatalf("simple query after the refusal: %v", err)
		}
		sd, err := c.Prepare(ctx, "", "SELECT $1::int + 1", nil)
		if err != nil || len(sd.ParamOIDs) != 1 {
			t.Fatalf("prepare after the refusal: %v", err)
		}
	}
	for name, sql := range deepStatements() {
		t.Run(name, func(t *testing.T) {
			_, err := pc.Exec(ctx, sql).ReadAll()
			pe := wantError(t, err, pgerrcode.StatementTooComplex)
			if !strings.HasPrefix(pe.Message, "statement is too") || pe.Hint == "" {
				t.Errorf("simple query: message %q, hint %q", pe.Message, pe.Hint)
			}
			alive(t, pc)

			_, err = pc.Prepare(ctx, "", sql, nil)
			wantError(t, err, pgerrcode.StatementTooComplex)
			alive(t, pc)
			alive(t, other)
		})
	}

	// Big statements that Postgres keeps flat still run, both ways.
	var or strings.Builder
	or.WriteString("SELECT count(*) FROM (VALUES (7)) v(id) WHERE id = 0")
	for i := 1; i < 20_000; i++ {
		fmt.Fprintf(&or, " OR id = %d", i)
	}
	res, err := pc.Exec(ctx, or.String()).ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "1" {
		t.Fatalf("20,000 ORs: %v", err)
	}
	if _, err := pc.Prepare(ctx, "", or.String(), nil); err != nil {
		t.Fatalf("20,000 ORs, prepared: %v", err)
	}

	// The mirror went on streaming through all of it.
	mustExec(t, f.src, "INSERT INTO t VALUES (2, 'after')")
	waitEqual(t, f.src, f.dst, "public.t", "public.t", "id")
	f.waitStatus(t, "deep", "RUNNING")
}

// FuzzSession sends statement text to a running Sluice server, through the
// simple protocol and as a prepared statement, and checks that every
// outcome is a result or an error response: never a dropped connection, a
// dead process (a crash kills this test) or a session that no longer
// answers. Seeds are kept small; the deep ones are in-memory.
func FuzzSession(f *testing.F) {
	nest := func(open, mid, close string, n int) string {
		return strings.Repeat(open, n) + mid + strings.Repeat(close, n)
	}
	for _, s := range []string{
		"SELECT 1",
		"SELECT 1; SELECT 2",
		"",
		"SELEC 1",
		"BEGIN; SELECT 1/0; COMMIT",
		"SHOW TimeZone",
		"SELECT * FROM mirrors",
		"SELECT $1::int",
		"CREATE PEER p FROM POSTGRES WITH (host = 'x',, port = 1)",
		"PAUSE MIRROR nosuch",
		"EXECUTE nosuch('SELECT 1')",
		"SELECT * FROM nosuch.public.t",
		"SELECT 1" + strings.Repeat("+1", 30_000),
		"SELECT " + nest("(", "1", ")", 30_000),
		"SELECT " + nest("ARRAY[", "1", "]", 10_000),
		"SELECT " + nest("CASE WHEN true THEN ", "1", " END", 5_000),
		"SELECT 1" + strings.Repeat(" UNION SELECT 1", 30_000),
		"SELECT 1" + strings.Repeat("::int", 30_000),
		"SELECT " + strings.Repeat("NOT ", 30_000) + "true",
		"EXECUTE p('SELECT 1" + strings.Repeat("+1", 30_000) + "')",
	} {
		f.Add(s)
	}
	ctx := context.Background()
	s, err := testbed.StartSluice(ctx, catalogCluster, testbed.Options{Password: testPassword})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = s.Stop() })
	var conn *pgconn.PgConn
	f.Cleanup(func() {
		if conn != nil {
			conn.Close(ctx)
		}
	})
	f.Fuzz(func(t *testing.T, sql string) {
		if strings.ContainsRune(sql, 0) {
			return // a query message cannot carry a NUL byte
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if conn == nil || conn.IsClosed() {
			if conn, err = pgconn.Connect(ctx, s.URL()); err != nil {
				t.Fatalf("connect: %v", err)
			}
		}
		serverError := func(what string, err error) {
			var pe *pgconn.PgError
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("%s %.200q: %v (not an error response)", what, sql, err)
			}
		}
		_, err := conn.Exec(ctx, sql).ReadAll()
		serverError("query", err)
		_, err = conn.Exec(ctx, "ROLLBACK; RESET ALL").ReadAll()
		serverError("reset", err)
		_, err = conn.Prepare(ctx, "", sql, nil)
		serverError("prepare", err)
		res, err := conn.Exec(ctx, "ROLLBACK; RESET ALL; SELECT 41 + 1").ReadAll()
		if err != nil || len(res) != 3 || len(res[2].Rows) != 1 || string(res[2].Rows[0][0]) != "42" {
			t.Fatalf("after %.200q the session does not answer: %v", sql, err)
		}
	})
}
