package executor_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
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

const testPassword = testbed.Password

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

// process is a sluice server running as a child process (the real
// binary, which a test may kill and restart).
type process = testbed.SluiceProcess

// startProcess starts sluice as a child process on a catalog of its own.
func startProcess(t *testing.T) *process {
	t.Helper()
	return testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testPassword)
}

// waitFor polls cond on a fresh connection to sluice until it holds.
func waitFor(t *testing.T, p *process, what string, cond func(conn *pgx.Conn) bool) {
	t.Helper()
	p.WaitFor(what, cond, nil)
}

// Helpers shared with the other packages that drive Sluice over the wire
// (executor/cluster, executor/mysqlmirror), under this package's names.
var (
	testCtx         = testbed.Ctx
	connect         = testbed.Connect
	mustExec        = testbed.MustExec
	wantError       = testbed.WantError
	waitEqual       = testbed.WaitEqual
	compareTables   = testbed.CompareTables
	count           = testbed.Count
	pgRows          = testbed.PGRows
	chRows          = testbed.CHRows
	waitSame        = testbed.WaitSame
	pgbench         = testbed.Pgbench
	pgbenchTables   = testbed.PgbenchTables
	startClickHouse = testbed.ClickHouseFor
	validateRows    = testbed.ValidateRows
)

// pgbenchMapping maps pgbench's tables onto tables of the same names.
const pgbenchMapping = testbed.PgbenchMapping

// peerOptions renders the WITH list of a CREATE PEER for a database of the
// peer cluster.
func peerOptions(dbURL string) string { return peerCluster.PeerOptions(dbURL) }
