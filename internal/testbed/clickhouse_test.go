package testbed

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestClickHouseStartQueryStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	ch, err := StartClickHouse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse %s up on %s in %v (dir %s)", ch.Version(), ch.Addr(), time.Since(start), ch.Dir())
	defer ch.Stop()
	if ch.Port() == 9000 || ch.HTTPPort() == 8123 {
		t.Errorf("test server on a default port: tcp %d, http %d", ch.Port(), ch.HTTPPort())
	}
	conn, err := ch.Open("default")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v == "" || v != ch.Version() {
		t.Errorf("version() = %q, Version() = %q", v, ch.Version())
	}

	pid := ch.cmd.Process.Pid
	dir := ch.Dir()
	ch.Stop()
	ch.Stop() // idempotent
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("server pid %d still alive after Stop", pid)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) && os.Getenv("SLUICE_KEEP_TEST_CLUSTERS") == "" {
		t.Errorf("dir %s not removed: %v", dir, err)
	}
}

func TestClickHouseTwoServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := StartClickHouse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	b, err := StartClickHouse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop()
	if a.Port() == b.Port() || a.Dir() == b.Dir() {
		t.Fatalf("servers share a port or dir: %s %s", a.Addr(), b.Addr())
	}
}

func TestClickHouseMissingBinary(t *testing.T) {
	t.Setenv("SLUICE_CLICKHOUSE_BIN", "/nonexistent/clickhouse-server")
	if _, err := StartClickHouse(context.Background()); !errors.Is(err, ErrNoClickHouse) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("missing SLUICE_CLICKHOUSE_BIN: err = %v, want ErrNoClickHouse saying to run make deps", err)
	}
	t.Setenv("SLUICE_CLICKHOUSE_BIN", "")
	t.Setenv("PATH", t.TempDir())
	saved := clickHouseDirs
	clickHouseDirs = []string{t.TempDir()}
	defer func() { clickHouseDirs = saved }()
	if _, err := StartClickHouse(context.Background()); !errors.Is(err, ErrNoClickHouse) {
		t.Fatalf("no binary anywhere: err = %v, want ErrNoClickHouse", err)
	}
}
