package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Clusters shared by the tests in this package: the catalog's and a source
// peer's. Each test takes its own databases.
var (
	catalogCluster *testbed.Cluster
	peerCluster    *testbed.Cluster
)

func TestMain(m *testing.M) {
	testbed.Main(m, []string{"catalog", "peer"}, &catalogCluster, &peerCluster)
}

const testPassword = "s3cret-pw"

// startSluice runs a server for one test, stopped when the test ends.
func startSluice(t *testing.T, opts testbed.Options) *testbed.Sluice {
	t.Helper()
	if opts.Password == "" {
		opts.Password = testPassword
	}
	s, err := testbed.StartSluice(testCtx(t), catalogCluster, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop sluice: %v", err)
		}
	})
	return s
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// mustExec runs sql through sluice and fails the test on error.
func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(testCtx(t), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// wantError checks that err is a server error with the given SQLSTATE.
func wantError(t *testing.T, err error, code string) *pgconn.PgError {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
	if pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %s: %s", code, pe.Code, pe.Message)
	}
	return pe
}

// peerOptions renders the WITH list of a CREATE PEER for a database of the
// peer cluster.
func peerOptions(dbURL string) string {
	return fmt.Sprintf("host = '127.0.0.1', port = %d, user = 'postgres', password = '%s', database = '%s'",
		peerCluster.Port(), peerCluster.Password(), testbed.DBName(dbURL))
}
