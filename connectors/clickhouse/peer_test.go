package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/clickhouse"
	"github.com/sluicedb/sluice/internal/testbed"
)

var server *testbed.ClickHouse

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	ch, err := testbed.StartClickHouse(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server = ch
	code := m.Run()
	ch.Stop()
	os.Exit(code)
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// peer returns options for the test server, with extra ones applied
// (an empty value deletes the key).
func peer(extra ...string) map[string]string {
	opts := map[string]string{"host": server.Host(), "port": strconv.Itoa(server.Port())}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			delete(opts, extra[i])
		} else {
			opts[extra[i]] = extra[i+1]
		}
	}
	return opts
}

func TestParsePeerOptions(t *testing.T) {
	cfg, err := clickhouse.ParsePeerOptions(map[string]string{"host": "ch.example"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9000 || cfg.User != "default" || cfg.Database != "default" || cfg.Password != "" ||
		cfg.DisableTLS || cfg.RequireTLS {
		t.Fatalf("defaults: %+v", cfg)
	}
	cfg, err = clickhouse.ParsePeerOptions(map[string]string{"host": "h", "port": "9440", "user": "u", "password": "p",
		"database": "analytics", "require_tls": "true", "tls_host": "ch.internal", "skip_cert_verification": "yes"})
	if err == nil {
		t.Fatalf("a non-boolean skip_cert_verification was accepted: %+v", cfg)
	}
	cfg, err = clickhouse.ParsePeerOptions(map[string]string{"host": "h", "port": "9440", "user": "u", "password": "p",
		"database": "analytics", "require_tls": "true", "tls_host": "ch.internal", "skip_cert_verification": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 9440 || cfg.User != "u" || cfg.Password != "p" || cfg.Database != "analytics" ||
		!cfg.RequireTLS || cfg.TLSHost != "ch.internal" || !cfg.SkipCertVerify || cfg.Addr() != "h:9440" {
		t.Fatalf("parsed: %+v", cfg)
	}

	bad := []struct {
		name    string
		opts    map[string]string
		key     string
		unknown bool
		missing bool
		text    string
	}{
		{"unknown", map[string]string{"host": "h", "hots": "x"}, "hots", true, false, "accepts certificate, database"},
		{"s3 staging", map[string]string{"host": "h", "s3_path": "s3://b"}, "s3_path", true, false, "no staging"},
		{"cluster", map[string]string{"host": "h", "cluster": "c"}, "cluster", true, false, "not supported"},
		{"no host", map[string]string{"port": "9000"}, "host", false, true, "required"},
		{"blank host", map[string]string{"host": "  "}, "host", false, true, "required"},
		{"port text", map[string]string{"host": "h", "port": "ninety"}, "port", false, false, "not a port"},
		{"port range", map[string]string{"host": "h", "port": "70000"}, "port", false, false, "not a port"},
		{"empty user", map[string]string{"host": "h", "user": ""}, "user", false, false, "empty"},
		{"empty database", map[string]string{"host": "h", "database": " "}, "database", false, false, "empty"},
		{"bad bool", map[string]string{"host": "h", "disable_tls": "maybe"}, "disable_tls", false, false, "boolean"},
		{"tls conflict", map[string]string{"host": "h", "disable_tls": "true", "require_tls": "true"}, "disable_tls", false, false, "conflicts"},
		{"bad root ca", map[string]string{"host": "h", "root_ca": "nope"}, "root_ca", false, false, "PEM"},
		{"cert without key", map[string]string{"host": "h", "certificate": "x"}, "private_key", false, true, "go together"},
		{"bad cert pair", map[string]string{"host": "h", "certificate": "x", "private_key": "y"}, "certificate", false, false, "PEM"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := clickhouse.ParsePeerOptions(tc.opts)
			var oe *connectors.OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v (cfg %+v), want an OptionError", err, cfg)
			}
			if oe.Key != tc.key || oe.Unknown != tc.unknown || oe.Missing != tc.missing {
				t.Fatalf("got %+v, want key %q unknown %v missing %v", oe, tc.key, tc.unknown, tc.missing)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("message %q does not name %q or say %q", err, tc.key, tc.text)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	ctx := testCtx(t)
	cases := []struct {
		name   string
		opts   map[string]string
		exists bool
	}{
		{"defaults (tls tried, plain used)", peer(), true},
		{"disable_tls", peer("disable_tls", "true"), true},
		{"password user", peer("user", testbed.ClickHouseUser, "password", testbed.ClickHousePassword, "database", "system"), true},
		{"missing database", peer("database", "no_such_db"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := clickhouse.ParsePeerOptions(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			info, err := cfg.Inspect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("inspect took %v: %+v", time.Since(start), info)
			if info.Version != server.Version() || info.DatabaseExists != tc.exists {
				t.Fatalf("info = %+v, want version %s, database exists %v", info, server.Version(), tc.exists)
			}
			if info.Major < 18 || !info.AtLeast(info.Major, info.Minor) || info.AtLeast(info.Major+1, 0) {
				t.Fatalf("version parsed as %d.%d", info.Major, info.Minor)
			}
		})
	}

	refused := []struct {
		name, text string
		opts       map[string]string
	}{
		{"wrong password", "password", peer("user", testbed.ClickHouseUser, "password", "wrong")},
		{"unknown user", "nobody_here", peer("user", "nobody_here")},
		{"require_tls on a plain port", "connect to", peer("require_tls", "true")},
		{"closed port", "connect to", peer("port", strconv.Itoa(closedPort(t)))},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := clickhouse.ParsePeerOptions(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			info, err := cfg.Inspect(ctx)
			if err == nil {
				t.Fatalf("inspect succeeded: %+v", info)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ch, err := testbed.StartClickHouse(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	port := ch.Port()
	ch.Stop()
	return port
}

// TestBatchInsert checks what the later destination work builds on against
// the test bed's server: Open, Ping, and a 100k-row native batch insert
// (which on 18.16 must name its columns).
func TestBatchInsert(t *testing.T) {
	ctx := testCtx(t)
	cfg, err := clickhouse.ParsePeerOptions(peer())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := cfg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE batch_t (id UInt64, name String, amount Float64, at DateTime) "+
		"ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Exec(context.Background(), "DROP TABLE IF EXISTS batch_t") }()

	const n = 100_000
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	start := time.Now()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO batch_t (id, name, amount, at)")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := batch.Append(uint64(i), fmt.Sprintf("row %d", i), float64(i)/2, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows inserted in %v", n, time.Since(start))

	var count, sum uint64
	var last string
	var gotAt time.Time
	if err := conn.QueryRow(ctx, "SELECT count(), sum(id), max(name), max(at) FROM batch_t").Scan(&count, &sum, &last, &gotAt); err != nil {
		t.Fatal(err)
	}
	if count != n || sum != n*(n-1)/2 || last != "row 99999" || !gotAt.Equal(at) {
		t.Fatalf("count %d sum %d max(name) %q max(at) %v", count, sum, last, gotAt)
	}
}
