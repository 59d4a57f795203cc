package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/executor"
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
