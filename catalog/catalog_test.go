package catalog_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/internal/testbed"
)

var cluster *testbed.Cluster

func TestMain(m *testing.M) {
	testbed.Main(m, []string{"catalog"}, &cluster)
}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, catalog.KeySize) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustOpen(t *testing.T, url string, key []byte) *catalog.Store {
	t.Helper()
	s, err := catalog.Open(testCtx(t), url, key)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// connect opens a plain connection to url, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// embedded returns the versions of the embedded migrations.
func embedded(t *testing.T) []int {
	t.Helper()
	vs, _, err := catalog.EmbeddedMigrations()
	if err != nil {
		t.Fatalf("load embedded migrations: %v", err)
	}
	return vs
}

type versionRow struct {
	Version   int
	AppliedAt time.Time
}

func versions(t *testing.T, conn *pgx.Conn) []versionRow {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT version, applied_at FROM sluice.schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("query versions: %v", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[versionRow])
	if err != nil {
		t.Fatalf("collect versions: %v", err)
	}
	return vs
}

func TestLoadMigrations(t *testing.T) {
	vs, names, err := catalog.EmbeddedMigrations()
	if err != nil || vs[0] != 1 || names[0] != "0001_init.sql" {
		t.Fatalf("embedded migrations = %v %v, %v", vs, names, err)
	}
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []int
		wantErr string
	}{
		{"sorted", fstest.MapFS{"m/0002_b.sql": file("b"), "m/0001_a.sql": file("a"), "m/README": file("x")}, []int{1, 2}, ""},
		{"gap", fstest.MapFS{"m/0001_a.sql": file("a"), "m/0003_c.sql": file("c")}, nil, "expected version 2"},
		{"duplicate", fstest.MapFS{"m/0001_a.sql": file("a"), "m/1_b.sql": file("b")}, nil, "expected version 2"},
		{"bad name", fstest.MapFS{"m/init.sql": file("a")}, nil, "NNNN_description.sql"},
		{"zero", fstest.MapFS{"m/0000_a.sql": file("a")}, nil, "NNNN_description.sql"},
		{"empty", fstest.MapFS{"m/README": file("x")}, nil, "none found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := catalog.MigrationVersions(tt.fsys, "m")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("versions = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestOpenTwiceAppliesOnce(t *testing.T) {
	url := cluster.NewDB(t)
	s := mustOpen(t, url, testKey(1))
	s.Close()
	conn := connect(t, url)
	first := versions(t, conn)
	if len(first) != len(embedded(t)) {
		t.Fatalf("after first Open: %d versions, want %d", len(first), len(embedded(t)))
	}
	mustOpen(t, url, testKey(1))
	if second := versions(t, conn); !reflect.DeepEqual(first, second) {
		t.Fatalf("second Open changed schema_migrations: %v -> %v", first, second)
	}
}

// TestMigratePending checks that migrate applies only pending migrations,
// each atomically with its version row.
func TestMigratePending(t *testing.T) {
	url := cluster.NewDB(t)
	mustOpen(t, url, testKey(1)).Close()
	conn := connect(t, url)
	ctx := testCtx(t)
	n := len(embedded(t))

	err := catalog.MigrateWithExtra(ctx, conn, "broken.sql", "CREATE TABLE sluice.half (a int); SELECT no_such_function()")
	if err == nil || !strings.Contains(err.Error(), "apply migration broken.sql") {
		t.Fatalf("broken migration: err = %v", err)
	}
	var half *string
	if err := conn.QueryRow(ctx, `SELECT to_regclass('sluice.half')::text`).Scan(&half); err != nil {
		t.Fatal(err)
	}
	if half != nil || len(versions(t, conn)) != n {
		t.Fatalf("failed migration left traces: table %v, versions %v", half, versions(t, conn))
	}

	for range 2 {
		err := catalog.MigrateWithExtra(ctx, conn, "next.sql", "CREATE TABLE sluice.next (a int); INSERT INTO sluice.next VALUES (1)")
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sluice.next`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 || len(versions(t, conn)) != n+1 {
		t.Fatalf("rows in sluice.next = %d, versions = %v; want 1 row, %d versions", count, versions(t, conn), n+1)
	}
}

func TestNewerCatalogRefused(t *testing.T) {
	url := cluster.NewDB(t)
	mustOpen(t, url, testKey(1)).Close()
	cluster.Exec(t, testbed.DBName(url), `INSERT INTO sluice.schema_migrations (version) VALUES (9999)`)

	_, err := catalog.Open(testCtx(t), url, testKey(1))
	supported := embedded(t)[len(embedded(t))-1]
	want := fmt.Sprintf("catalog schema version 9999 is newer than this sluice supports (%d): upgrade sluice", supported)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want containing %q", err, want)
	}
	var verr *catalog.SchemaVersionError
	if !errors.As(err, &verr) || verr.Catalog != 9999 || verr.Supported != supported {
		t.Fatalf("err = %#v, want *SchemaVersionError{9999, %d}", err, supported)
	}
	// The refused Open released its lock: another start does not hang.
	if _, err := catalog.Open(testCtx(t), url, testKey(1)); !errors.As(err, &verr) {
		t.Fatalf("second Open: err = %v", err)
	}
}

func TestPeerCRUD(t *testing.T) {
	s := mustOpen(t, cluster.NewDB(t), testKey(1))
	ctx := testCtx(t)
	pg := catalog.Peer{Name: "pg1", Type: "POSTGRES", Options: map[string]string{
		"host": "db.internal", "port": "5432", "database": "app", "user": "repl", "password": "s3cret!",
	}}
	ch := catalog.Peer{Name: "ch", Type: "CLICKHOUSE", Options: map[string]string{"host": "ch.internal"}}
	empty := catalog.Peer{Name: "Zed", Type: "MYSQL"}
	before := time.Now().Add(-time.Minute)
	for _, p := range []catalog.Peer{pg, ch, empty} {
		if err := s.CreatePeer(ctx, p); err != nil {
			t.Fatalf("CreatePeer %s: %v", p.Name, err)
		}
	}

	got, err := s.GetPeer(ctx, "pg1")
	if err != nil {
		t.Fatalf("GetPeer: %v", err)
	}
	if got.Name != pg.Name || got.Type != pg.Type || !reflect.DeepEqual(got.Options, pg.Options) {
		t.Fatalf("GetPeer = %+v, want %+v", got, pg)
	}
	if got.CreatedAt.Before(before) {
		t.Fatalf("CreatedAt = %v, not set", got.CreatedAt)
	}
	if got, _ := s.GetPeer(ctx, "Zed"); got.Options == nil || len(got.Options) != 0 {
		t.Fatalf("peer without options: Options = %#v, want empty map", got.Options)
	}

	list, err := s.ListPeers(ctx)
	if err != nil {
		t.Fatalf("ListPeers: %v", err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Name)
	}
	if want := []string{"Zed", "ch", "pg1"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("ListPeers names = %v, want %v", names, want)
	}
	if !reflect.DeepEqual(list[2].Options, pg.Options) {
		t.Fatalf("ListPeers options = %v", list[2].Options)
	}

	errTests := []struct {
		name string
		err  error
		want error
	}{
		{"create taken name", s.CreatePeer(ctx, catalog.Peer{Name: "pg1", Type: "MYSQL"}), catalog.ErrExists},
		{"get missing", func() error { _, err := s.GetPeer(ctx, "nope"); return err }(), catalog.ErrNotFound},
		{"drop missing", s.DropPeer(ctx, "nope"), catalog.ErrNotFound},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("err = %v, want wrapping %v", tt.err, tt.want)
			}
		})
	}
	if err := s.CreatePeer(ctx, catalog.Peer{Name: "", Type: "POSTGRES"}); err == nil {
		t.Fatal("CreatePeer with empty name succeeded")
	}
	if err := s.CreatePeer(ctx, catalog.Peer{Name: "x"}); err == nil {
		t.Fatal("CreatePeer with empty type succeeded")
	}

	if err := s.DropPeer(ctx, "pg1"); err != nil {
		t.Fatalf("DropPeer: %v", err)
	}
	if _, err := s.GetPeer(ctx, "pg1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("GetPeer after drop: err = %v", err)
	}
	if err := s.DropPeer(ctx, "pg1"); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("second DropPeer: err = %v", err)
	}
	if err := s.CreatePeer(ctx, pg); err != nil {
		t.Fatalf("re-create after drop: %v", err)
	}
}

func TestSecretsSealedAtRest(t *testing.T) {
	url := cluster.NewDB(t)
	s := mustOpen(t, url, testKey(1))
	ctx := testCtx(t)
	const secret = "hunter2-very-secret"
	err := s.CreatePeer(ctx, catalog.Peer{Name: "p", Type: "POSTGRES", Options: map[string]string{
		"host": "h", "user": "u", "password": secret,
	}})
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	var raw []byte
	var rowText string
	err = conn.QueryRow(ctx, `SELECT options_sealed, row_to_json(p)::text FROM sluice.peers p WHERE name = 'p'`).
		Scan(&raw, &rowText)
	if err != nil {
		t.Fatal(err)
	}
	for _, needle := range []string{secret, "password"} {
		if bytes.Contains(raw, []byte(needle)) || strings.Contains(rowText, needle) {
			t.Fatalf("%q found in clear in sluice.peers", needle)
		}
	}
	if len(raw) < 12+16 {
		t.Fatalf("options_sealed is %d bytes, too short for nonce and tag", len(raw))
	}

	// Sealed options are bound to their peer: copying them onto another
	// row makes that row unreadable rather than silently different.
	if _, err := s.Pool().Exec(ctx, `INSERT INTO sluice.peers (name, type, options_sealed)
		SELECT 'copy', type, options_sealed FROM sluice.peers WHERE name = 'p'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPeer(ctx, "copy"); err == nil || !strings.Contains(err.Error(), "decrypt options") {
		t.Fatalf("GetPeer of copied row: err = %v", err)
	}
}

func TestStatusView(t *testing.T) {
	url := cluster.NewDB(t)
	s := mustOpen(t, url, testKey(1))
	ctx := testCtx(t)
	peers := []catalog.Peer{
		{Name: "pg_b", Type: "POSTGRES", Options: map[string]string{"host": "shared", "port": "5432", "database": "b", "user": "ub", "password": "pw-b"}},
		{Name: "pg_a", Type: "POSTGRES", Options: map[string]string{"host": "shared", "port": "5433", "database": "a", "username": "ua", "password": "pw-a"}},
		{Name: "sf", Type: "SNOWFLAKE", Options: map[string]string{"account_id": "acct", "username": "sfu", "private_key": "pw-sf", "database": "W"}},
		{Name: "bq", Type: "BIGQUERY", Options: map[string]string{"project_id": "proj", "dataset_id": "ds", "client_email": "svc@x", "private_key": "pw-bq"}},
		{Name: "ch", Type: "CLICKHOUSE", Options: map[string]string{"host": "shared", "password": "pw-ch"}},
	}
	for _, p := range peers {
		if err := s.CreatePeer(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "SET search_path = "+catalog.StatusSchema); err != nil {
		t.Fatal(err)
	}

	rows, _ := conn.Query(ctx, `SELECT * FROM peers LIMIT 0`)
	rows.Close()
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	if want := []string{"name", "type", "host", "port", "database", "user", "created_at"}; !reflect.DeepEqual(cols, want) {
		t.Fatalf("view columns = %v, want %v", cols, want)
	}

	var all string
	if err := conn.QueryRow(ctx, `SELECT string_agg(row_to_json(p)::text, ' ') FROM peers p`).Scan(&all); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(all, "pw-") {
		t.Fatalf("a secret is visible in %s.peers: %s", catalog.StatusSchema, all)
	}

	queries := []struct {
		name, sql, want string
	}{
		{"where and order by",
			`SELECT string_agg(name || ':' || port || ':' || "user", ',') FROM (SELECT * FROM peers WHERE type = 'POSTGRES' ORDER BY name) p`,
			"pg_a:5433:ua,pg_b:5432:ub"},
		{"aggregate",
			`SELECT string_agg(type || '=' || n, ',' ORDER BY type) FROM (SELECT type, count(*) AS n FROM peers GROUP BY type) g`,
			"BIGQUERY=1,CLICKHOUSE=1,POSTGRES=2,SNOWFLAKE=1"},
		{"self join",
			`SELECT string_agg(a.name || '~' || b.name, ',' ORDER BY a.name, b.name) FROM peers a JOIN peers b ON a.host = b.host AND a.name < b.name`,
			"ch~pg_a,ch~pg_b,pg_a~pg_b"},
		{"snowflake display",
			`SELECT concat_ws('|', host, port, database, "user") FROM peers WHERE name = 'sf'`,
			"acct|W|sfu"},
		{"bigquery display",
			`SELECT concat_ws('|', host, port, database, "user") FROM peers WHERE name = 'bq'`,
			"proj|ds|svc@x"},
		{"missing options are null",
			`SELECT (port IS NULL AND database IS NULL AND "user" IS NULL)::text FROM peers WHERE name = 'ch'`,
			"true"},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			var got string
			if err := conn.QueryRow(ctx, q.sql).Scan(&got); err != nil {
				t.Fatalf("%s: %v", q.sql, err)
			}
			if got != q.want {
				t.Fatalf("got %q, want %q", got, q.want)
			}
		})
	}
}

func TestWrongKeyRefused(t *testing.T) {
	url := cluster.NewDB(t)
	mustOpen(t, url, testKey(1)).Close()
	_, err := catalog.Open(testCtx(t), url, testKey(2))
	if !errors.Is(err, catalog.ErrKeyMismatch) {
		t.Fatalf("Open with another key: err = %v, want ErrKeyMismatch", err)
	}
	if !strings.Contains(err.Error(), "secret key does not match this catalog (was SLUICE_SECRET_KEY or the key file changed?)") {
		t.Fatalf("message = %q", err)
	}
	if _, err := catalog.Open(testCtx(t), url, testKey(1)[:16]); err == nil {
		t.Fatal("Open with a 16-byte key succeeded")
	}
	mustOpen(t, url, testKey(1)) // the right key still works
}

func TestConcurrentOpen(t *testing.T) {
	url := cluster.NewDB(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := catalog.Open(testCtx(t), url, testKey(1))
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	conn := connect(t, url)
	if got := len(versions(t, conn)); got != len(embedded(t)) {
		t.Fatalf("%d versions recorded, want %d", got, len(embedded(t)))
	}
	var checks int
	if err := conn.QueryRow(testCtx(t), `SELECT count(*) FROM sluice.settings WHERE key = $1`, catalog.KeyCheckSetting).Scan(&checks); err != nil {
		t.Fatal(err)
	}
	if checks != 1 {
		t.Fatalf("%d key-check rows, want 1", checks)
	}
}

func TestLoadKeyEnv(t *testing.T) {
	key := []byte("0123456789abcdef0123456789ABCDEF")
	tests := []struct {
		name string
		env  string
		ok   bool
	}{
		{"hex", hex.EncodeToString(key), true},
		{"hex upper", strings.ToUpper(hex.EncodeToString(key)), true},
		{"base64 std", base64.StdEncoding.EncodeToString(key), true},
		{"base64 raw url", base64.RawURLEncoding.EncodeToString(key), true},
		{"base64 with newline", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"hex too short", hex.EncodeToString(key[:31]), false},
		{"base64 too long", base64.StdEncoding.EncodeToString(append(key, 'x')), false},
		{"plain passphrase", "correct horse battery staple", false},
		{"64 non-hex chars", strings.Repeat("z", 64), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := catalog.LoadKey(tt.env, "")
			if !tt.ok {
				if err == nil || err.Error() != "SLUICE_SECRET_KEY must be 32 bytes, hex or base64 encoded" {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("LoadKey = %x, %v; want %x", got, err, key)
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, err := catalog.LoadKey("", dir)
	if err != nil {
		t.Fatalf("LoadKey: %v", err)
	}
	if len(key) != catalog.KeySize {
		t.Fatalf("key is %d bytes", len(key))
	}
	path := filepath.Join(dir, catalog.KeyFileName)
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s mode = %04o, want %04o", p, st.Mode().Perm(), want)
		}
	}
	if again, err := catalog.LoadKey("", dir); err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second LoadKey = %x, %v; want the same key", again, err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".secret.key-*")); len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}

	t.Run("refuses group-readable file", func(t *testing.T) {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(path, 0o600)
		_, err := catalog.LoadKey("", dir)
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("err = %v, want a hint to chmod 600", err)
		}
	})
	t.Run("refuses garbage", func(t *testing.T) {
		bad := t.TempDir()
		if err := os.WriteFile(filepath.Join(bad, catalog.KeyFileName), []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.LoadKey("", bad); err == nil {
			t.Fatal("LoadKey accepted a malformed key file")
		}
	})
	t.Run("env wins over file", func(t *testing.T) {
		env := testKey(7)
		got, err := catalog.LoadKey(hex.EncodeToString(env), dir)
		if err != nil || !bytes.Equal(got, env) {
			t.Fatalf("LoadKey = %x, %v", got, err)
		}
	})
	t.Run("concurrent creation agrees", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "race")
		const n = 8
		keys := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				k, err := catalog.LoadKey("", dir)
				if err != nil {
					t.Errorf("LoadKey: %v", err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for i := range keys {
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("goroutines got different keys")
			}
		}
	})
	t.Run("works with Open", func(t *testing.T) {
		url := cluster.NewDB(t)
		mustOpen(t, url, key).Close()
		again, err := catalog.LoadKey("", dir)
		if err != nil {
			t.Fatal(err)
		}
		mustOpen(t, url, again)
	})
}

// TestDiscardMirror: a mirror discarded after a failed CREATE MIRROR leaves
// no row and no event of its own, and no "dropped" event; the history of an
// earlier mirror of the same name stays.
func TestDiscardMirror(t *testing.T) {
	s, url := twoPeers(t)
	ctx := testCtx(t)
	m := catalog.Mirror{Name: "m", SourcePeer: "a", DestinationPeer: "b", Options: map[string]string{}, Publication: "p", Slot: "s",
		Tables: []catalog.MirrorTable{{Source: "public.t", Destination: "public.t"}}}
	// An earlier mirror m, created and dropped: its two events stay.
	if err := s.CreateMirror(ctx, m, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMirror(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateMirror(ctx, m, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DiscardMirror(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	var kinds string
	var mirrors, tables int
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(kind, ',' ORDER BY id), ''),
		(SELECT count(*) FROM sluice.mirrors), (SELECT count(*) FROM sluice.mirror_tables)
		FROM sluice.mirror_events WHERE mirror = 'm'`).Scan(&kinds, &mirrors, &tables); err != nil {
		t.Fatal(err)
	}
	if kinds != "created,dropped" || mirrors != 0 || tables != 0 {
		t.Fatalf("after discard: events %q, %d mirrors, %d tables; want the earlier mirror's created,dropped and nothing else", kinds, mirrors, tables)
	}
	if err := s.DiscardMirror(ctx, "m"); !errors.Is(err, catalog.ErrMirrorNotFound) {
		t.Fatalf("second discard: %v, want ErrMirrorNotFound", err)
	}
}
