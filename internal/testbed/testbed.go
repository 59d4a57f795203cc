// Package testbed starts throwaway Postgres clusters for integration tests:
// each is made with initdb in a temporary directory, listens on a random
// loopback port and runs with wal_level=logical so it can serve as a source.
//
// Use it from TestMain: start the clusters, run the tests, stop them
// explicitly before os.Exit (a deferred call would never run). Each test then
// takes a fresh database of its own with NewDB.
//
// StartClickHouse starts a throwaway ClickHouse server the same way (a
// config in a temporary directory, 127.0.0.1 and free ports); it is up in
// well under a second, so tests may start one each.
//
// A missing Postgres or ClickHouse installation is a failure, never a skip.
package testbed

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/pgcluster"
)

// Cluster is a throwaway cluster and the directory it lives in.
type Cluster struct {
	*pgcluster.Cluster
	Name string
	dir  string
}

var dbSeq atomic.Int64

// Start creates and starts a cluster named name (used in paths and logs).
// The server is tuned for tests: fsync off, logical decoding on.
func Start(ctx context.Context, name string) (*Cluster, error) {
	return StartWith(ctx, name, nil)
}

// StartWith is Start with extra server settings (name to value), which
// override the test tuning.
func StartWith(ctx context.Context, name string, settings map[string]string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "sluice-test-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("testbed: temp dir: %w", err)
	}
	all := map[string]string{
		"wal_level":             "logical",
		"max_replication_slots": "40",
		"max_wal_senders":       "40",
		"max_connections":       "200",
		"fsync":                 "off",
		"synchronous_commit":    "off",
		"full_page_writes":      "off",
		"shared_buffers":        "128MB",
	}
	for k, v := range settings {
		all[k] = v
	}
	c, err := pgcluster.New(pgcluster.Config{
		Dir:      filepath.Join(dir, "data"),
		Password: "testpw-" + name,
		Settings: all,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Init(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(ctx); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Cluster{Cluster: c, Name: name, dir: dir}, nil
}

// Stop stops the server and removes its files. Idempotent.
func (c *Cluster) Stop() {
	if c == nil {
		return
	}
	_ = c.Cluster.Stop()
	if os.Getenv("SLUICE_KEEP_TEST_CLUSTERS") == "" {
		os.RemoveAll(c.dir)
	}
}

// Dir returns the directory holding the cluster's data and log.
func (c *Cluster) Dir() string { return c.dir }

// NewDB creates a fresh database for the calling test and returns its URL.
// The database is dropped when the test ends.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t_%s_%d", sanitize(t.Name()), dbSeq.Add(1))
	if len(name) > 60 {
		name = fmt.Sprintf("t_%d_%s", dbSeq.Add(1), name[len(name)-40:])
	}
	c.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		DropSlots(ctx, conn, name)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return c.URL(name)
}

// Exec runs sql on database db of the cluster and fails the test on error.
func (c *Cluster) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		t.Fatalf("testbed: connect %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testbed: exec on %s: %v\n%s", db, err, sql)
	}
}

// PeerOptions renders the WITH list of a CREATE PEER ... FROM POSTGRES
// for the database of the cluster that dbURL (made by NewDB) names, as
// user postgres.
func (c *Cluster) PeerOptions(dbURL string) string {
	return fmt.Sprintf("host = '127.0.0.1', port = %d, user = 'postgres', password = '%s', database = '%s'",
		c.Port(), c.Password(), DBName(dbURL))
}

// DBName returns the database name of a URL made by NewDB.
func DBName(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// DropSlots drops the replication slots of database db (a test that failed
// half-way may leave one, and a slot keeps its database from being dropped).
func DropSlots(ctx context.Context, conn *pgx.Conn, db string) {
	_, _ = conn.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		WHERE database = $1 AND active_pid IS NOT NULL`, db)
	for i := 0; i < 50; i++ {
		_, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, db)
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
