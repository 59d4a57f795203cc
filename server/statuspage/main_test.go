package statuspage_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Clusters shared by the tests in this package: the catalog's, and one
// holding the source and destination databases of the mirrors.
var (
	catalogCluster *testbed.Cluster
	peerCluster    *testbed.Cluster
)

func TestMain(m *testing.M) {
	testbed.Main(m, []string{"catalog", "peer"}, &catalogCluster, &peerCluster)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// openCatalog makes a migrated catalog in a fresh database and returns its
// store, closed when the test ends.
func openCatalog(t *testing.T) *catalog.Store {
	t.Helper()
	url := catalogCluster.NewDB(t)
	key := make([]byte, catalog.KeySize)
	_, _ = rand.Read(key)
	store, err := catalog.Open(testCtx(t), url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	return store
}

// newPool connects a pool to url, closed when the test ends.
func newPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
