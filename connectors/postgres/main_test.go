package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Clusters shared by every test of this package: a source and a
// destination, both with wal_level=logical. Each test takes its own
// databases with NewDB.
var (
	srcCluster *testbed.Cluster
	dstCluster *testbed.Cluster
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	srcCluster, err = testbed.Start(ctx, "source")
	if err == nil {
		dstCluster, err = testbed.Start(ctx, "dest")
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test clusters:", err)
		srcCluster.Stop()
		os.Exit(1)
	}
	code := m.Run()
	dstCluster.Stop()
	srcCluster.Stop()
	os.Exit(code)
}

// testCtx returns a context bounded to the test.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a pgx connection closed when the test ends.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// mustExec runs sql on conn and fails the test on error.
func mustExec(t testing.TB, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("exec: %v\n%s", err, sql)
	}
}
