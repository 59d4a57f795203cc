package testbed

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

var cluster *Cluster

func TestMain(m *testing.M) {
	c, err := Start(context.Background(), "testbed")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cluster = c
	code := m.Run()
	c.Stop()
	os.Exit(code)
}

func TestClusterIsLogical(t *testing.T) {
	url := cluster.NewDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var level, db string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level'), current_database()").Scan(&level, &db); err != nil {
		t.Fatal(err)
	}
	if level != "logical" {
		t.Errorf("wal_level = %q, want logical", level)
	}
	if db != DBName(url) {
		t.Errorf("connected to %q, want %q", db, DBName(url))
	}
}
