package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/executor"
	"github.com/sluicedb/sluice/server/web"
)

// --catalog-pool-size and --catalog-pool-wait have defaults, come from the
// environment too, are checked, and are in --help.
func TestCatalogPoolFlags(t *testing.T) {
	for _, k := range []string{"SLUICE_CATALOG_POOL_SIZE", "SLUICE_CATALOG_POOL_WAIT"} {
		t.Setenv(k, "")
	}
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CatalogPoolSize != executor.DefaultCatalogPoolSize || cfg.CatalogPoolWait != executor.DefaultCatalogPoolWait {
		t.Errorf("defaults: %d, %s", cfg.CatalogPoolSize, cfg.CatalogPoolWait)
	}
	cfg, err = parseServe([]string{"--catalog-pool-size", "7", "--catalog-pool-wait", "250ms"}, &stderr)
	if err != nil || cfg.CatalogPoolSize != 7 || cfg.CatalogPoolWait != 250*time.Millisecond {
		t.Errorf("flags: %+v, %v", cfg, err)
	}
	t.Setenv("SLUICE_CATALOG_POOL_SIZE", "3")
	if cfg, err = parseServe(nil, &stderr); err != nil || cfg.CatalogPoolSize != 3 {
		t.Errorf("environment: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{{"--catalog-pool-size", "0"}, {"--catalog-pool-wait", "0s"}} {
		if _, err := parseServe(args, &stderr); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	for _, flag := range []string{"--catalog-pool-size", "--catalog-pool-wait", "SLUICE_CATALOG_POOL_SIZE"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

// --http-listen defaults to 127.0.0.1:9901, comes from the environment
// too ("" there turns it off), is off with "off", is refused on a
// non-loopback address without a password, and is in --help; so is
// --lag-history-retention, default 168h.
func TestHTTPListenFlags(t *testing.T) {
	t.Setenv("SLUICE_PASSWORD", "")
	t.Setenv("SLUICE_LAG_HISTORY_RETENTION", "")
	t.Setenv("SLUICE_HTTP_LISTEN", "")
	os.Unsetenv("SLUICE_HTTP_LISTEN") // restored by t.Setenv's cleanup
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPListen != "127.0.0.1:9901" {
		t.Errorf("SLUICE_HTTP_LISTEN unset: got %q", cfg.HTTPListen)
	}
	t.Setenv("SLUICE_HTTP_LISTEN", "")
	if cfg, err = parseServe(nil, &stderr); err != nil || !web.Disabled(cfg.HTTPListen) {
		t.Errorf("SLUICE_HTTP_LISTEN empty: %+v, %v", cfg, err)
	}
	if cfg.LagHistoryRetention != 168*time.Hour {
		t.Errorf("--lag-history-retention default %s, want 168h", cfg.LagHistoryRetention)
	}
	if cfg, err = parseServe([]string{"--http-listen", "off", "--lag-history-retention", "1h"}, &stderr); err != nil ||
		cfg.HTTPListen != "off" || cfg.LagHistoryRetention != time.Hour {
		t.Errorf("flags: %+v, %v", cfg, err)
	}
	if _, err := parseServe([]string{"--lag-history-retention", "0s"}, &stderr); err == nil ||
		!strings.Contains(err.Error(), "--lag-history-retention") {
		t.Errorf("--lag-history-retention 0s: err = %v", err)
	}
	_, err = parseServe([]string{"--http-listen", "0.0.0.0:9901"}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "SLUICE_PASSWORD") || !strings.Contains(err.Error(), "0.0.0.0:9901") {
		t.Errorf("non-loopback without a password: err = %v", err)
	}
	if _, err := parseServe([]string{"--http-listen", "nonsense"}, &stderr); err == nil || !strings.Contains(err.Error(), "--http-listen") {
		t.Errorf("bad address: err = %v", err)
	}
	t.Setenv("SLUICE_PASSWORD", "pw")
	if cfg, err = parseServe([]string{"--http-listen", "0.0.0.0:9901", "--listen", "127.0.0.1:9900"}, &stderr); err != nil ||
		cfg.HTTPListen != "0.0.0.0:9901" {
		t.Errorf("non-loopback with a password: %+v, %v", cfg, err)
	}
	t.Setenv("SLUICE_HTTP_LISTEN", "127.0.0.1:19901")
	if cfg, err = parseServe(nil, &stderr); err != nil || cfg.HTTPListen != "127.0.0.1:19901" {
		t.Errorf("environment: %+v, %v", cfg, err)
	}
	for _, flag := range []string{"--http-listen", "SLUICE_HTTP_LISTEN", "127.0.0.1:9901", "--lag-history-retention",
		"SLUICE_LAG_HISTORY_RETENTION", "168h"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

// --node-timeout defaults to 15s, comes from the environment too, is
// checked, and is in --help.
func TestNodeTimeoutFlag(t *testing.T) {
	t.Setenv("SLUICE_NODE_TIMEOUT", "")
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, &stderr)
	if err != nil || cfg.NodeTimeout != 15*time.Second {
		t.Fatalf("default: %+v, %v", cfg, err)
	}
	if cfg, err = parseServe([]string{"--node-timeout", "5s"}, &stderr); err != nil || cfg.NodeTimeout != 5*time.Second {
		t.Errorf("flag: %+v, %v", cfg, err)
	}
	t.Setenv("SLUICE_NODE_TIMEOUT", "30s")
	if cfg, err = parseServe(nil, &stderr); err != nil || cfg.NodeTimeout != 30*time.Second {
		t.Errorf("environment: %+v, %v", cfg, err)
	}
	if _, err := parseServe([]string{"--node-timeout", "100ms"}, &stderr); err == nil || !strings.Contains(err.Error(), "--node-timeout") {
		t.Errorf("--node-timeout 100ms: err = %v", err)
	}
	for _, flag := range []string{"--node-timeout", "SLUICE_NODE_TIMEOUT", "15s", "docs/cluster.md"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

// --lag-history-interval defaults to 10s, comes from the environment too,
// is checked (at least 100ms), and is in --help.
func TestLagHistoryIntervalFlag(t *testing.T) {
	t.Setenv("SLUICE_LAG_HISTORY_INTERVAL", "")
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, &stderr)
	if err != nil || cfg.LagHistoryInterval != 10*time.Second {
		t.Fatalf("default: %+v, %v", cfg, err)
	}
	if cfg, err = parseServe([]string{"--lag-history-interval", "1s"}, &stderr); err != nil || cfg.LagHistoryInterval != time.Second {
		t.Errorf("flag: %+v, %v", cfg, err)
	}
	t.Setenv("SLUICE_LAG_HISTORY_INTERVAL", "30s")
	if cfg, err = parseServe(nil, &stderr); err != nil || cfg.LagHistoryInterval != 30*time.Second {
		t.Errorf("environment: %+v, %v", cfg, err)
	}
	if _, err := parseServe([]string{"--lag-history-interval", "10ms"}, &stderr); err == nil ||
		!strings.Contains(err.Error(), "--lag-history-interval") {
		t.Errorf("--lag-history-interval 10ms: err = %v", err)
	}
	for _, flag := range []string{"--lag-history-interval", "SLUICE_LAG_HISTORY_INTERVAL", "10s"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}

// --memory-limit defaults to executor.DefaultMemoryLimit, comes from the
// environment too, takes units, is checked, and is in --help.
func TestMemoryLimitFlag(t *testing.T) {
	t.Setenv("SLUICE_MEMORY_LIMIT", "")
	var stderr bytes.Buffer
	cfg, err := parseServe(nil, &stderr)
	if err != nil || cfg.MemoryLimit != executor.DefaultMemoryLimit {
		t.Fatalf("default: %d, %v", cfg.MemoryLimit, err)
	}
	for in, want := range map[string]int64{"0": 0, "1GiB": 1 << 30, "512 MiB": 512 << 20, "300MB": 300e6,
		"64kB": 64000, "1048576": 1 << 20, "10B": 10, "2KiB": 2048, "1GB": 1e9} {
		if cfg, err = parseServe([]string{"--memory-limit", in}, &stderr); err != nil || cfg.MemoryLimit != want {
			t.Errorf("--memory-limit %s: %d, %v; want %d", in, cfg.MemoryLimit, err, want)
		}
	}
	t.Setenv("SLUICE_MEMORY_LIMIT", "1GiB")
	if cfg, err = parseServe(nil, &stderr); err != nil || cfg.MemoryLimit != 1<<30 {
		t.Errorf("environment: %d, %v", cfg.MemoryLimit, err)
	}
	for _, bad := range []string{"lots", "-5MiB", "1.5GiB", "12TB", "99999999999GiB"} {
		if _, err := parseServe([]string{"--memory-limit", bad}, &stderr); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("--memory-limit %s: err = %v", bad, err)
		}
	}
	for _, flag := range []string{"--memory-limit", "SLUICE_MEMORY_LIMIT", "200MiB", "GOMEMLIMIT"} {
		if !strings.Contains(usage, flag) {
			t.Errorf("--help does not mention %s", flag)
		}
	}
}
