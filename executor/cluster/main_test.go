// Package cluster_test runs several Sluice nodes on one catalog
// (docs/cluster.md) as an operator would: `sluice serve` processes, killed
// (SIGKILL), stopped (SIGTERM) and frozen (SIGSTOP) at chosen moments,
// with streams, leases, fences and load jobs checked through the wire and
// the catalog. These tests spend most of their time waiting for node
// timeouts and failovers; they are a package of their own, apart from the
// executor package's tests, so that the two run in parallel and neither
// dominates `make test`.
package cluster_test

import (
	"testing"

	"github.com/sluicedb/sluice/internal/testbed"
)

// Clusters shared by the tests in this package: the nodes' catalogs (a
// database per test) and the source and destination peers (databases per
// test). They are started once, for the whole package; one that does not
// start fails it.
var (
	catalogCluster *testbed.Cluster
	peerCluster    *testbed.Cluster
)

func TestMain(m *testing.M) {
	testbed.Main(m, []string{"catalog", "peer"}, &catalogCluster, &peerCluster)
}

// Helpers shared with the other packages that drive Sluice over the wire,
// under short names.
var (
	testCtx   = testbed.Ctx
	connect   = testbed.Connect
	mustExec  = testbed.MustExec
	waitEqual = testbed.WaitEqual
	pgbench   = testbed.Pgbench
)
