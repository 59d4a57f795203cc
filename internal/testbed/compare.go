package testbed

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/jackc/pgx/v5"
)

// Checks of what a mirror wrote, shared by the test packages that run
// mirrors through Sluice: a destination compared with its source row by
// row, in Postgres or ClickHouse.

// WaitEqual waits (90 s at most) until the destination table equals the
// source table row by row, ordered by key, and fails t with the first
// differences otherwise.
func WaitEqual(t testing.TB, src, dst *pgx.Conn, srcTable, dstTable, key string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var diff string
	for time.Now().Before(deadline) {
		diff = CompareTables(t, src, dst, srcTable, dstTable, key)
		if diff == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s and %s differ:\n%s", srcTable, dstTable, diff)
}

// TableRows returns the rows of table as text, ordered by key.
func TableRows(t testing.TB, conn *pgx.Conn, table, key string) []string {
	t.Helper()
	rows, err := conn.Query(Ctx(t), fmt.Sprintf("SELECT x::text FROM %s x ORDER BY %s", table, key))
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	return out
}

// CompareTables compares two tables row by row, ordered by key, and
// describes their first differences (at most five); "" when they are
// equal.
func CompareTables(t testing.TB, src, dst *pgx.Conn, srcTable, dstTable, key string) string {
	t.Helper()
	a, b := TableRows(t, src, srcTable, key), TableRows(t, dst, dstTable, key)
	var d []string
	for i := 0; i < max(len(a), len(b)) && len(d) < 5; i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			d = append(d, fmt.Sprintf("row %d: source %s, destination %s", i, x, y))
		}
	}
	if len(a) != len(b) {
		d = append(d, fmt.Sprintf("source has %d rows, destination %d", len(a), len(b)))
	}
	return strings.Join(d, "\n")
}

// Count returns count(*) of table.
func Count(t testing.TB, conn *pgx.Conn, table string) int64 {
	t.Helper()
	var n int64
	if err := conn.QueryRow(Ctx(t), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// PGRows reads a Postgres query of one text column.
func PGRows(t testing.TB, conn *pgx.Conn, query string) []string {
	t.Helper()
	rows, err := conn.Query(Ctx(t), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// CHRows reads a ClickHouse query whose columns are all strings, as user
// default on a connection of its own.
func CHRows(t testing.TB, ch *ClickHouse, query string) []string {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{ch.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.Query(Ctx(t), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// WaitSame waits (60 s at most) until the Postgres query on src and the
// ClickHouse query on ch return the same rows, and fails t with the first
// row that differs otherwise.
func WaitSame(t testing.TB, src *pgx.Conn, pgQuery string, ch *ClickHouse, chQuery string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var a, b []string
	for time.Now().Before(deadline) {
		a, b = PGRows(t, src, pgQuery), CHRows(t, ch, chQuery)
		if strings.Join(a, "\n") == strings.Join(b, "\n") {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := 0; i < max(len(a), len(b)); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			t.Fatalf("row %d: source %q, ClickHouse %q (source %d rows, ClickHouse %d)", i, x, y, len(a), len(b))
		}
	}
}

// ValidationRow is a row VALIDATE MIRROR returns.
type ValidationRow struct {
	Table        string
	Source, Dest int64
	Ranges       []string
	Status       string
}

// ValidateRows runs a VALIDATE MIRROR and returns its rows by table, with
// the simple protocol, or the extended one (binary results) when extended.
func ValidateRows(t testing.TB, conn *pgx.Conn, sql string, extended ...bool) map[string]ValidationRow {
	t.Helper()
	mode := pgx.QueryExecModeSimpleProtocol
	if len(extended) > 0 && extended[0] {
		mode = pgx.QueryExecModeCacheDescribe
	}
	rows, err := conn.Query(Ctx(t), sql, mode)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out := map[string]ValidationRow{}
	for rows.Next() {
		var r ValidationRow
		if err := rows.Scan(&r.Table, &r.Source, &r.Dest, &r.Ranges, &r.Status); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		out[r.Table] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}
