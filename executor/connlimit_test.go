package executor_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors/all"
	"github.com/sluicedb/sluice/executor"
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
	// The server frees the slot when it sees the session end, just after
	// Close returns.
	conns[0].Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, err := pgx.Connect(ctx, s.URL())
		if err == nil {
			if err := again.Ping(ctx); err != nil {
				t.Fatalf("session in a freed slot: %v", err)
			}
			again.Close(ctx)
			break
		}
		wantError(t, err, pgerrcode.TooManyConnections)
		if time.Now().After(deadline) {
			t.Fatal("the slot of a closed session was not freed in 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// When the catalog's server refuses the session's connection (here: a
// connection limit on the reader role, whose one connection a transaction
// block holds), the client gets 53300 without the internal role's name.
func TestCatalogConnectionLimitHidesRole(t *testing.T) {
	s := startSluice(t, testbed.Options{CatalogPoolWait: 500 * time.Millisecond})
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
	mustExec(t, first, "BEGIN")
	_, err := pgx.Connect(ctx, s.URL())
	pe := wantError(t, err, pgerrcode.TooManyConnections)
	all := err.Error() + pe.Detail + pe.Hint
	if strings.Contains(all, role) || strings.Contains(all, "sluice_reader") {
		t.Errorf("error names the internal role: %v (%s %s)", err, pe.Detail, pe.Hint)
	}
	if pe.Message != "sorry, too many clients already" {
		t.Errorf("message = %q", pe.Message)
	}
	if pe.Detail == "" || !strings.Contains(pe.Hint, "--catalog-pool-size") {
		t.Errorf("detail %q, hint %q", pe.Detail, pe.Hint)
	}
	if err := first.Ping(ctx); err != nil {
		t.Fatalf("the first session: %v", err)
	}
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Start warns when the catalog pool and Sluice's own connections do not fit
// in the catalog server's connection slots (the test cluster has
// max_connections 200, 3 of them reserved), and is quiet when they fit.
func TestCatalogCapacityWarning(t *testing.T) {
	ctx := testCtx(t)
	key := make([]byte, catalog.KeySize)
	_, _ = rand.Read(key)
	url := catalogCluster.NewDB(t)
	store, err := catalog.Open(ctx, url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	for _, c := range []struct {
		poolSize int
		warned   bool
	}{{500, true}, {197, true}, {150, false}, {0, false}} {
		var logs lockedBuffer
		ex, err := executor.New(executor.Config{Store: store, CatalogURL: url, CatalogPoolSize: c.poolSize, Kinds: all.Registry(),
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		if err := ex.Start(sctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		ex.Close()
		warned := strings.Contains(logs.String(), "catalog_slots=197")
		if warned != c.warned {
			t.Errorf("pool size %d: warned = %v, want %v; log:\n%s", c.poolSize, warned, c.warned, logs.String())
		}
	}
}
