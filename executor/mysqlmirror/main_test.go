// Package mysqlmirror_test runs mirrors from MariaDB through a Sluice
// server, as a user would: CREATE PEER ... FROM MYSQL and CREATE MIRROR
// over the Postgres wire, into Postgres and ClickHouse, with the source's
// and the destination's rows compared as text. It is a package of its own
// so that it runs in parallel with the executor package's tests.
package mysqlmirror_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Servers shared by the tests: one MariaDB (a database per test), one
// Postgres cluster (Sluice's catalogs and the destinations, a database per
// test) and one ClickHouse (a database per test).
var (
	maria *testbed.MariaDB
	pg    *testbed.Cluster
	ch    *testbed.ClickHouse
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	var err error
	maria, err = testbed.StartMariaDB(ctx)
	if err == nil {
		pg, err = testbed.Start(ctx, "mysqlmirror")
	}
	if err == nil {
		ch, err = testbed.StartClickHouse(ctx)
	}
	cancel()
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, "start test servers:", err)
	} else {
		code = m.Run()
	}
	if ch != nil {
		ch.Stop()
	}
	if pg != nil {
		pg.Stop()
	}
	if maria != nil {
		maria.Stop()
	}
	os.Exit(code)
}

const testPassword = testbed.Password

// startSluice runs a server for one test, stopped when the test ends.
func startSluice(t *testing.T) *testbed.Sluice {
	t.Helper()
	s, err := testbed.StartSluice(testCtx(t), pg, testbed.Options{Password: testPassword})
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

// Helpers shared with the other packages that drive Sluice over the wire.
var (
	testCtx   = testbed.Ctx
	connect   = testbed.Connect
	mustExec  = testbed.MustExec
	wantError = testbed.WantError
)

var dbSeq atomic.Int64

// newMariaDB creates a database of its own on the MariaDB server for the
// calling test (dropped when it ends) and returns its name.
func newMariaDB(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("app%d", dbSeq.Add(1))
	maria.Exec(t, "", "CREATE DATABASE "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := maria.Connect(ctx, ""); err == nil {
			_, _ = c.Execute("DROP DATABASE IF EXISTS " + name)
			c.Close()
		}
	})
	return name
}

// myConn opens a MariaDB connection to db, closed when the test ends.
func myConn(t *testing.T, db string) *client.Conn {
	t.Helper()
	c, err := maria.Connect(testCtx(t), db)
	if err != nil {
		t.Fatalf("connect to MariaDB: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// peerSeq numbers the MYSQL peers the tests create (mysqlPeer).
var peerSeq atomic.Uint32

// peerServerIDSpan is how many replica ids the mirrors of one peer spread
// over above its server_id (connectors/mysql's serverIDSpan).
const peerServerIDSpan = 100_000

// mysqlPeer is the CREATE PEER statement of a MYSQL peer named name on the
// shared MariaDB, database db. Each peer has a server_id of its own, a
// span of replica ids apart from every other's: the tests run in parallel
// on one MariaDB, and two mirrors with one name (m) on peers with one
// server_id would read the binlog with one replica id, the newer dump
// ending the older one's (4052, the older mirror FAILED until it retries).
func mysqlPeer(name, db string) string {
	id := 1_000_000 + peerSeq.Add(1)*peerServerIDSpan
	return fmt.Sprintf("CREATE PEER %s FROM MYSQL WITH (host = '127.0.0.1', port = %d, user = '%s', password = '%s', database = '%s', server_id = '%d')",
		name, maria.Port(), testbed.MariaDBUser, testbed.MariaDBPassword, db, id)
}

// pgPeer is the CREATE PEER statement of a POSTGRES peer on the database of
// the shared cluster that dbURL names.
func pgPeer(name, dbURL string) string {
	return fmt.Sprintf("CREATE PEER %s FROM POSTGRES WITH (host = '127.0.0.1', port = %d, user = 'postgres', password = '%s', database = '%s')",
		name, pg.Port(), pg.Password(), testbed.DBName(dbURL))
}

// fixture is a Sluice server with a MYSQL peer "my" on a database of its
// own and a POSTGRES peer "dst" on a fresh database.
type fixture struct {
	s      *testbed.Sluice
	conn   *pgx.Conn // to Sluice
	db     string    // the MariaDB database
	dstURL string
	dst    *pgx.Conn
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{s: startSluice(t), db: newMariaDB(t), dstURL: pg.NewDB(t)}
	f.conn = connect(t, f.s.URL())
	f.dst = connect(t, f.dstURL)
	mustExec(t, f.conn, mysqlPeer("my", f.db))
	mustExec(t, f.conn, pgPeer("dst", f.dstURL))
	return f
}

// waitStatus waits until the mirror shows status want.
func waitStatus(t *testing.T, conn *pgx.Conn, mirror, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var status, errText string
	for time.Now().Before(deadline) {
		err := conn.QueryRow(testCtx(t), "SELECT status, coalesce(error, '') FROM mirrors WHERE name = $1", mirror).
			Scan(&status, &errText)
		if err == nil && status == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mirror %s: status %s (error %q), want %s", mirror, status, errText, want)
}

// waitResync waits until the table's resync_status is want.
func waitResync(t *testing.T, conn *pgx.Conn, mirror, table, want string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var status, errText, mstatus string
	for time.Now().Before(deadline) {
		err := conn.QueryRow(testCtx(t), `SELECT coalesce(t.resync_status, ''), coalesce(t.resync_error, ''), m.status
			FROM mirror_tables t JOIN mirrors m ON m.name = t.mirror
			WHERE t.mirror = $1 AND t.source_table = $2`, mirror, table).Scan(&status, &errText, &mstatus)
		if err == nil && status == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("resync of %s: status %q (error %q, mirror %s), want %s", table, status, errText, mstatus, want)
}
