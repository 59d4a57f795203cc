package executor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Many more sessions than the catalog's server has connection slots all
// work: they share a bounded pool of catalog connections. (Each session
// held a catalog connection of its own before, so past about 35 sessions the
// catalog refused them with 53300.)
func TestCatalogPoolManySessions(t *testing.T) {
	ctx := testCtx(t)
	small, err := testbed.StartWith(ctx, "smallcat", map[string]string{
		"max_connections": "40", "max_wal_senders": "5", "max_replication_slots": "5"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(small.Stop)
	s, err := testbed.StartSluice(ctx, small, testbed.Options{MaxConnections: 400, CatalogPoolSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop sluice: %v", err)
		}
	})
	const sessions = 300
	conns := make([]*pgx.Conn, sessions)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	for i := range conns {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c, err := pgx.Connect(ctx, s.URL())
			if err != nil {
				errs <- fmt.Errorf("session %d: connect: %w", i, err)
				return
			}
			conns[i] = c
		}(i)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close(context.Background())
			}
		}
	})
	// All sessions are open at once; now each runs queries, concurrently.
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func(i int, c *pgx.Conn) {
			defer wg.Done()
			for j := range 5 {
				var got int
				var name string
				if err := c.QueryRow(ctx, "SELECT $1::int * 2, current_setting('search_path')", i*10+j).Scan(&got, &name); err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
				if got != (i*10+j)*2 {
					errs <- fmt.Errorf("session %d got %d", i, got)
					return
				}
			}
			if _, err := c.Exec(ctx, "SELECT count(*) FROM peers"); err != nil {
				errs <- fmt.Errorf("session %d: simple protocol: %w", i, err)
			}
		}(i, c)
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 5 {
			t.Error(err)
		}
	}
	if n > 5 {
		t.Errorf("... and %d more errors", n-5)
	}
}

// backendPID is the catalog backend that served a statement of conn.
func backendPID(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var pid int
	if err := conn.QueryRow(testCtx(t), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// sameBackend fails the test unless a and b are served by one catalog
// backend (a pool of one connection).
func sameBackend(t *testing.T, a, b *pgx.Conn) {
	t.Helper()
	if pa, pb := backendPID(t, a), backendPID(t, b); pa != pb {
		t.Fatalf("pool of one: sessions on backends %d and %d", pa, pb)
	}
}

// show returns a setting as conn's session sees it.
func show(t *testing.T, conn *pgx.Conn, name string) string {
	t.Helper()
	var v string
	if err := conn.QueryRow(testCtx(t), "SELECT coalesce(current_setting($1, true), '')", name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Sessions that take turns on one catalog connection each see their own
// settings (SET, start-up parameters, RESET back to the start-up value), never
// another's.
func TestCatalogPoolSettingsIsolated(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1})
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	cfg, err := pgx.ParseConfig(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["DateStyle"] = "SQL, DMY"
	c, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })

	sameBackend(t, a, b)
	defaults := map[string]string{}
	for _, k := range []string{"DateStyle", "TimeZone", "search_path", "myapp.flavour"} {
		defaults[k] = show(t, b, k)
	}
	mustExec(t, a, "SET DateStyle = 'German'")
	mustExec(t, a, "SET TimeZone = 'Asia/Tokyo'")
	mustExec(t, a, "SET search_path = pg_catalog")
	mustExec(t, a, "SET myapp.flavour = 'lime'")
	want := map[string]string{"DateStyle": "German, DMY", "TimeZone": "Asia/Tokyo", "search_path": "pg_catalog",
		"myapp.flavour": "lime"}
	for round := range 2 {
		for k, v := range defaults {
			if got := show(t, b, k); got != v {
				t.Errorf("round %d: session b sees %s = %q, want %q", round, k, got, v)
			}
		}
		if got := show(t, c, "DateStyle"); got != "SQL, DMY" {
			t.Errorf("round %d: session c's start-up DateStyle = %q", round, got)
		}
		for k, v := range want {
			if got := show(t, a, k); got != v {
				t.Errorf("round %d: session a sees %s = %q, want %q", round, k, got, v)
			}
		}
	}
	// The client is told about its own DateStyle only.
	if got := a.PgConn().ParameterStatus("DateStyle"); got != "German, DMY" {
		t.Errorf("session a's reported DateStyle = %q", got)
	}
	if got := b.PgConn().ParameterStatus("DateStyle"); got != defaults["DateStyle"] {
		t.Errorf("session b's reported DateStyle = %q, want %q", got, defaults["DateStyle"])
	}
	mustExec(t, c, "SET DateStyle = 'Postgres'")
	show(t, b, "DateStyle")
	mustExec(t, c, "RESET DateStyle")
	if got := show(t, c, "DateStyle"); got != "SQL, DMY" {
		t.Errorf("RESET DateStyle in session c: %q, want its start-up value", got)
	}
	mustExec(t, a, "RESET ALL")
	for k, v := range defaults {
		if got := show(t, a, k); got != v {
			t.Errorf("after RESET ALL session a sees %s = %q, want %q", k, got, v)
		}
	}
}

// A transaction block keeps its catalog connection: SET LOCAL holds to the
// end of the block, and a failed block stays failed until ROLLBACK, however
// other sessions use the pool meanwhile.
func TestCatalogPoolTransactionBlock(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 2})
	ctx := testCtx(t)
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	busy := func() {
		t.Helper()
		for i := range 5 {
			var n int
			if err := b.QueryRow(ctx, "SELECT $1::int", i).Scan(&n); err != nil || n != i {
				t.Fatalf("other session: %d, %v", n, err)
			}
		}
	}
	mustExec(t, a, "BEGIN")
	pid := backendPID(t, a)
	mustExec(t, a, "SET LOCAL TimeZone = 'Pacific/Auckland'")
	busy()
	if got := show(t, a, "TimeZone"); got != "Pacific/Auckland" {
		t.Errorf("SET LOCAL lost inside the block: %q", got)
	}
	if got := backendPID(t, a); got != pid {
		t.Errorf("the block moved from backend %d to %d", pid, got)
	}
	if got := show(t, b, "TimeZone"); got == "Pacific/Auckland" {
		t.Error("another session sees the block's SET LOCAL")
	}
	mustExec(t, a, "COMMIT")
	if got := show(t, a, "TimeZone"); got == "Pacific/Auckland" {
		t.Error("SET LOCAL outlived its block")
	}

	mustExec(t, a, "BEGIN")
	if _, err := a.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("1/0 did not fail")
	}
	busy()
	_, err := a.Exec(ctx, "SELECT 1")
	wantError(t, err, pgerrcode.InFailedSQLTransaction)
	busy()
	if a.PgConn().TxStatus() != 'E' {
		t.Errorf("transaction status %c, want E", a.PgConn().TxStatus())
	}
	mustExec(t, a, "ROLLBACK")
	if a.PgConn().TxStatus() != 'I' {
		t.Errorf("transaction status after ROLLBACK %c, want I", a.PgConn().TxStatus())
	}
	busy()
	if got := backendPID(t, a); got == 0 {
		t.Error("no backend after ROLLBACK")
	}
}

// When every pooled connection is pinned (transaction blocks, SQL-level
// prepared statements), another session gets 53300 from Sluice within the
// pool's wait, naming the flag, and works again once one is free; the
// sessions that hold them are not disturbed.
func TestCatalogPoolExhausted(t *testing.T) {
	const wait = 500 * time.Millisecond
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1, CatalogPoolWait: wait})
	ctx := testCtx(t)
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	mustExec(t, a, "BEGIN")
	start := time.Now()
	_, err := b.Exec(ctx, "SELECT 1")
	pe := wantError(t, err, pgerrcode.TooManyConnections)
	if took := time.Since(start); took > wait+5*time.Second {
		t.Errorf("waited %s for a catalog connection, bound %s", took, wait)
	}
	if !strings.Contains(pe.Message, "too many sessions are using the catalog at once") ||
		!strings.Contains(pe.Hint, "--catalog-pool-size") {
		t.Errorf("error: %s (hint %q)", pe.Message, pe.Hint)
	}
	if a.PgConn().TxStatus() != 'T' {
		t.Errorf("the holder's block: status %c", a.PgConn().TxStatus())
	}
	mustExec(t, a, "SELECT 1")
	mustExec(t, a, "COMMIT")
	mustExec(t, b, "SELECT 1")

	// A SQL-level prepared statement pins the connection until DISCARD ALL.
	mustExec(t, a, "PREPARE q AS SELECT 42")
	_, err = b.Exec(ctx, "SELECT 1")
	wantError(t, err, pgerrcode.TooManyConnections)
	var n int
	if err := a.QueryRow(ctx, "EXECUTE q", pgx.QueryExecModeSimpleProtocol).Scan(&n); err != nil || n != 42 {
		t.Fatalf("EXECUTE q: %d, %v", n, err)
	}
	mustExec(t, a, "DISCARD ALL")
	mustExec(t, b, "SELECT 1")

	// A session that cannot get a catalog connection at start-up is told so.
	mustExec(t, a, "BEGIN")
	_, err = pgx.Connect(ctx, s.URL())
	wantError(t, err, pgerrcode.TooManyConnections)
	mustExec(t, a, "ROLLBACK")
}

// Statements prepared through the extended protocol keep working when the
// session's catalog connection was used (and reset) by another session in
// between, with named and unnamed statements, in every exec mode.
func TestCatalogPoolPreparedAcrossBorrows(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1})
	ctx := testCtx(t)
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	sameBackend(t, a, b)
	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec}
	for i := range 4 {
		for _, mode := range modes {
			var got int
			var tz string
			if err := a.QueryRow(ctx, "SELECT $1::int + 1, current_setting('TimeZone')", mode, i).Scan(&got, &tz); err != nil || got != i+1 {
				t.Fatalf("round %d, mode %v: %d, %v", i, mode, got, err)
			}
			// The other session takes the connection, with a setting of its own.
			mustExec(t, b, fmt.Sprintf("SET TimeZone = 'UTC+%d'", i+1))
			if tz == fmt.Sprintf("UTC+%d", i) {
				t.Errorf("round %d: session a saw session b's TimeZone", i)
			}
		}
	}
	sd, err := a.Prepare(ctx, "named", "SELECT $1::text || '!'")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustExec(t, b, "SELECT 1")
		var got string
		if err := a.QueryRow(ctx, sd.Name, "hi").Scan(&got); err != nil || got != "hi!" {
			t.Fatalf("named statement, round %d: %q, %v", i, got, err)
		}
	}
	if err := a.Deallocate(ctx, "named"); err != nil {
		t.Fatalf("deallocate: %v", err)
	}
}

// Notices from the catalog reach the session whose statement raised them,
// when sessions take turns on one catalog connection.
func TestCatalogPoolNotices(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1})
	var mu sync.Mutex
	got := map[string][]string{}
	open := func(name string) *pgx.Conn {
		cfg, err := pgx.ParseConfig(s.URL())
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			defer mu.Unlock()
			got[name] = append(got[name], n.Message)
		}
		c, err := pgx.ConnectConfig(testCtx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	a, b := open("a"), open("b")
	sameBackend(t, a, b)
	for range 3 {
		mustExec(t, a, "COMMIT") // WARNING: there is no transaction in progress
		mustExec(t, b, "SELECT 1")
	}
	mustExec(t, b, "BEGIN")
	mustExec(t, b, "BEGIN") // WARNING: there is already a transaction in progress
	mustExec(t, b, "ROLLBACK")
	mu.Lock()
	defer mu.Unlock()
	if len(got["a"]) != 3 || !strings.Contains(strings.Join(got["a"], "|"), "no transaction in progress") ||
		strings.Contains(strings.Join(got["a"], "|"), "already") {
		t.Errorf("session a's notices: %q", got["a"])
	}
	if len(got["b"]) != 1 || !strings.Contains(got["b"][0], "already a transaction in progress") {
		t.Errorf("session b's notices: %q", got["b"])
	}
}

// A cancel request cancels the statement of the session that sent it, on
// the catalog connection it holds; the next session on that connection
// runs undisturbed.
func TestCatalogPoolCancel(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1})
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	sameBackend(t, a, b)
	for range 2 {
		wantCancelled(t, a, "SELECT pg_sleep(20)")
		start := time.Now()
		var n int
		if err := b.QueryRow(testCtx(t), "SELECT 5 FROM pg_sleep(0.3)").Scan(&n); err != nil || n != 5 {
			t.Fatalf("the next session on the connection: %d, %v", n, err)
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Error("the next session's pg_sleep was cut short")
		}
		mustExec(t, a, "SELECT 1")
	}
}

// A pooled connection that breaks (its backend terminated) is discarded,
// not handed out again: the session that finds it broken gets one error, and
// every statement after runs on a new backend, in that session and others.
func TestCatalogPoolBrokenConnection(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolSize: 1})
	ctx := testCtx(t)
	a := connect(t, s.URL())
	b := connect(t, s.URL())
	admin := connect(t, s.CatalogURL)
	for round := range 2 {
		pid := backendPID(t, a)
		var ok bool
		if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1, 5000)", pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("terminate %d: %v, %v", pid, ok, err)
		}
		_, _ = a.Exec(ctx, "SELECT 1") // may fail once: the backend is gone
		for _, c := range []*pgx.Conn{a, b, a} {
			if got := backendPID(t, c); got == pid {
				t.Fatalf("round %d: the terminated backend %d was used again", round, pid)
			}
		}
		sameBackend(t, a, b)
	}
}
