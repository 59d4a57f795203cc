package mysql_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors/mysql"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Servers shared by the package's tests: a MariaDB source with the binlog
// a CDC source needs, and a Postgres that checks the encoders' binary
// values (it receives each and sends it back). Each test takes a database
// of its own on the MariaDB (newDB).
var (
	maria *testbed.MariaDB
	pg    *testbed.Cluster
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	maria, err = testbed.StartMariaDB(ctx)
	if err == nil {
		pg, err = testbed.Start(ctx, "mysqlcheck")
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test servers:", err)
		maria.Stop()
		os.Exit(1)
	}
	code := m.Run()
	pg.Stop()
	maria.Stop()
	os.Exit(code)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var dbSeq atomic.Int64

// newDB creates a database on the MariaDB for the calling test, dropped
// when it ends, and returns its name.
func newDB(t *testing.T) string {
	t.Helper()
	name := "t" + strconv.FormatInt(dbSeq.Add(1), 10)
	maria.Exec(t, "", "CREATE DATABASE "+name)
	t.Cleanup(func() { maria.Exec(t, "", "DROP DATABASE IF EXISTS "+name) })
	return name
}

// peerOn returns the admin peer of server m with database db.
func peerOn(t *testing.T, m *testbed.MariaDB, db string, extra map[string]string) *mysql.PeerConfig {
	t.Helper()
	opts := map[string]string{"host": m.Host(), "port": strconv.Itoa(m.Port()), "user": testbed.MariaDBUser,
		"password": testbed.MariaDBPassword, "database": db}
	for k, v := range extra {
		opts[k] = v
	}
	cfg, err := mysql.ParsePeerOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// openSource opens a mysql.Source on the shared MariaDB, closed when the test ends.
func openSource(t *testing.T, db string) *mysql.Source {
	t.Helper()
	src, err := peerOn(t, maria, db, nil).OpenSource(testCtx(t), "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	return src.(*mysql.Source)
}
