package executor_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// A session over --max-connections is refused by Sluice itself with 53300,
// naming no internal role; the sessions already open keep working, and a
// slot that frees up is taken by the next session.
func TestMaxConnections(t *testing.T) {
	const limit = 5
	s := startSluice(t, testbed.Options{MaxConnections: limit})
	ctx := testCtx(t)
	conns := make([]*pgx.Conn, limit)
	for i := range conns {
		conns[i] = connect(t, s.URL())
	}
	for range 2 {
		_, err := pgx.Connect(ctx, s.URL())
		pe := wantError(t, err, pgerrcode.TooManyConnections)
		if pe.Severity != "FATAL" || pe.Message != "sorry, too many clients already" {
			t.Errorf("over the limit: got %s %q", pe.Severity, pe.Message)
		}
		if strings.Contains(err.Error()+pe.Detail+pe.Hint, "sluice_reader") {
			t.Errorf("error names the internal role: %v (%s %s)", err, pe.Detail, pe.Hint)
		}
	}
	for i, c := range conns {
		var n int
		if err := c.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
			t.Fatalf("session %d after refusals: %d, %v", i, n, err)
		}
	}
	conns[0].Close(ctx)
	again := connect(t, s.URL())
	if err := again.Ping(ctx); err != nil {
		t.Fatalf("session in a freed slot: %v", err)
	}
}

// When the catalog's server refuses the session's connection (here: a
// connection limit on the reader role), the client gets 53300 without the
// internal role's name.
func TestCatalogConnectionLimitHidesRole(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	ctx := testCtx(t)
	if !s.Store.ReaderIsolated() {
		t.Fatal("the test catalog has no reader role")
	}
	admin := connect(t, s.CatalogURL)
	var role string
	if err := admin.QueryRow(ctx, "SELECT 'sluice_reader_' || left(md5(current_database()), 10)").Scan(&role); err != nil {
		t.Fatal(err)
	}
	mustExec(t, admin, "ALTER ROLE "+role+" CONNECTION LIMIT 1")
	first := connect(t, s.URL())
	_, err := pgx.Connect(ctx, s.URL())
	pe := wantError(t, err, pgerrcode.TooManyConnections)
	all := err.Error() + pe.Detail + pe.Hint
	if strings.Contains(all, role) || strings.Contains(all, "sluice_reader") {
		t.Errorf("error names the internal role: %v (%s %s)", err, pe.Detail, pe.Hint)
	}
	if pe.Message != "sorry, too many clients already" {
		t.Errorf("message = %q", pe.Message)
	}
	if err := first.Ping(ctx); err != nil {
		t.Fatalf("the first session: %v", err)
	}
}
