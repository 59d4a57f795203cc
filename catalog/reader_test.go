package catalog_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/catalog"
)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("want SQLSTATE %s, got %v", code, err)
	}
}

func TestReaderRole(t *testing.T) {
	dbURL := cluster.NewDB(t)
	s := mustOpen(t, dbURL, testKey(1))
	ctx := testCtx(t)
	if !s.ReaderIsolated() {
		t.Fatal("a superuser catalog did not get a reader role")
	}
	if err := s.CreatePeer(ctx, catalog.Peer{Name: "p", Type: "POSTGRES",
		Options: map[string]string{"host": "h", "password": "secret-pw"}}); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(s.ReaderURL())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u.User.Username(), "sluice_reader_") || len(u.User.Username()) != len("sluice_reader_")+10 {
		t.Fatalf("reader user %q", u.User.Username())
	}

	reader := connect(t, s.ReaderURL())
	var got string
	err = reader.QueryRow(ctx, `SELECT current_setting('search_path') || ' ' || current_setting('default_transaction_read_only') ||
		' ' || current_setting('is_superuser') || ' ' || (SELECT string_agg(name || '@' || host, ',') FROM peers) ||
		' ' || (SELECT count(*) FROM mirrors) + (SELECT count(*) FROM mirror_tables) + (SELECT count(*) FROM mirror_events)`).Scan(&got)
	if err != nil {
		t.Fatal(err)
	}
	if got != "sluice_status on off p@h 0" {
		t.Fatalf("reader sees %q", got)
	}
	for _, sql := range []string{
		"SELECT * FROM sluice.peers",
		"SELECT * FROM sluice.settings",
		"SELECT pg_read_file('PG_VERSION')",
		"SET ROLE postgres",
	} {
		_, err := reader.Exec(ctx, sql)
		wantCode(t, err, pgerrcode.InsufficientPrivilege)
	}
	// Even with read-only mode off, it may not write.
	if _, err := reader.Exec(ctx, "SET default_transaction_read_only = off"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"DELETE FROM sluice.peers",
		"CREATE TABLE sluice_status.x (a int)",
		"CREATE VIEW sluice_status.y AS SELECT 1",
	} {
		_, err := reader.Exec(ctx, sql)
		wantCode(t, err, pgerrcode.InsufficientPrivilege)
	}

	// A second Open sets a new password: the old one no longer works, and
	// the first Store learns the new one with RefreshReaderURL.
	first := s.ReaderURL()
	s2 := mustOpen(t, dbURL, testKey(1))
	if s2.ReaderURL() == first {
		t.Fatal("the password did not change")
	}
	if _, err := pgx.Connect(ctx, first); err == nil {
		t.Fatal("the old password still works")
	}
	refreshed, err := s.RefreshReaderURL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if refreshed != s2.ReaderURL() || s.ReaderURL() != refreshed {
		t.Fatal("RefreshReaderURL did not learn the new password")
	}
	connect(t, refreshed)

	// Privileges given to it by hand are taken back at the next Open.
	admin := connect(t, dbURL)
	role := u.User.Username()
	for _, sql := range []string{
		"GRANT SELECT ON sluice.peers TO " + role,
		"GRANT pg_read_server_files TO " + role,
		"ALTER ROLE " + role + " CREATEDB",
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	s3 := mustOpen(t, dbURL, testKey(1))
	reader = connect(t, s3.ReaderURL())
	_, err = reader.Exec(ctx, "SELECT * FROM sluice.peers")
	wantCode(t, err, pgerrcode.InsufficientPrivilege)
	_, err = reader.Exec(ctx, "SELECT pg_read_file('PG_VERSION')")
	wantCode(t, err, pgerrcode.InsufficientPrivilege)
	var createdb bool
	if err := admin.QueryRow(ctx, "SELECT rolcreatedb FROM pg_roles WHERE rolname = $1", role).Scan(&createdb); err != nil || createdb {
		t.Fatalf("rolcreatedb = %v, %v", createdb, err)
	}
}

func TestReaderWithoutCreateRole(t *testing.T) {
	dbURL := cluster.NewDB(t)
	db := strings.TrimPrefix(mustParse(t, dbURL).Path, "/")
	owner := "catalog_owner_" + strings.ReplaceAll(strings.ToLower(t.Name()), "/", "_")
	admin := connect(t, dbURL)
	ctx := testCtx(t)
	for _, sql := range []string{
		"CREATE ROLE " + owner + " LOGIN PASSWORD 'owner-pw'",
		"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " OWNER TO " + owner,
		"GRANT CREATE ON SCHEMA public TO " + owner,
	} {
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" OWNER TO postgres")
	})
	u := mustParse(t, dbURL)
	u.User = url.UserPassword(owner, "owner-pw")
	s := mustOpen(t, u.String(), testKey(1))
	if s.ReaderIsolated() {
		t.Fatal("a user without CREATEROLE made a reader role")
	}
	if s.ReaderURL() != u.String() {
		t.Fatalf("ReaderURL = %q, want the catalog URL", s.ReaderURL())
	}
	if got, err := s.RefreshReaderURL(ctx); err != nil || got != u.String() {
		t.Fatalf("RefreshReaderURL = %q, %v", got, err)
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestURLWithUser(t *testing.T) {
	tests := []struct{ base, want string }{
		{"postgres://admin:pw@db:5432/cat?sslmode=disable&user=x",
			"postgres://r:p%27w@db:5432/cat?sslmode=disable"},
		{"postgresql://db/cat", "postgresql://r:p%27w@db/cat"},
		{"host=db dbname=cat user=admin password=pw",
			`host=db dbname=cat user=admin password=pw user='r' password='p\'w'`},
	}
	for _, tt := range tests {
		got, err := catalog.URLWithUser(tt.base, "r", "p'w")
		if err != nil || got != tt.want {
			t.Errorf("URLWithUser(%q) = %q, %v; want %q", tt.base, got, err, tt.want)
		}
		cfg, err := pgconn.ParseConfig(got)
		if err != nil || cfg.User != "r" || cfg.Password != "p'w" {
			t.Errorf("%q parses as user %q password %q, %v", got, cfg.User, cfg.Password, err)
		}
	}
}
