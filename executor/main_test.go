package executor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// Helpers shared with the other packages that drive Sluice over the wire.
var (
	connect   = testbed.Connect
	mustExec  = testbed.MustExec
	wantError = testbed.WantError
)

// peerOptions renders the WITH list of a CREATE PEER for a database of the
// peer cluster.
func peerOptions(dbURL string) string {
	return fmt.Sprintf("host = '127.0.0.1', port = %d, user = 'postgres', password = '%s', database = '%s'",
		peerCluster.Port(), peerCluster.Password(), testbed.DBName(dbURL))
}
