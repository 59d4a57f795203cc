package executor_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/internal/testbed"
)

// catalogState is what a client must not be able to change in the catalog:
// the peers, and which tables and views exist outside pg_catalog.
func catalogState(t *testing.T, s *testbed.Sluice) string {
	t.Helper()
	conn := connect(t, s.CatalogURL) // the catalog's own user, not the reader
	var state string
	err := conn.QueryRow(testCtx(t), `
SELECT (SELECT string_agg(name || '@' || coalesce(host, ''), ',' ORDER BY name) FROM sluice.peers) || ';' ||
       (SELECT string_agg(n.nspname || '.' || c.relname, ',' ORDER BY 1)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')) || ';' ||
       (SELECT count(*) FROM pg_largeobject_metadata)`).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// TestCatalogBypasses tries every known way to write the read-only catalog
// through Sluice's front end: each is refused, and nothing changes.
func TestCatalogBypasses(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	if !s.Store.ReaderIsolated() {
		t.Fatal("the test catalog's superuser could not set up the reader role")
	}
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	setup := connect(t, s.URL())
	mustExec(t, setup, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	before := catalogState(t, s)

	tests := []struct {
		name  string
		steps []string // run in order on one session; each must fail with its code
		codes []string
	}{
		{"data-modifying CTE",
			[]string{"WITH gone AS (DELETE FROM peers RETURNING name) SELECT count(*) FROM gone"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"data-modifying CTE in EXPLAIN ANALYZE",
			[]string{"EXPLAIN ANALYZE WITH gone AS (DELETE FROM peers RETURNING name) SELECT count(*) FROM gone"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"data-modifying statement in PREPARE",
			[]string{"PREPARE wipe AS DELETE FROM peers"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"SELECT INTO",
			[]string{"SELECT 1 AS a INTO made_here"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"SELECT FOR UPDATE",
			[]string{"SELECT name FROM peers FOR UPDATE"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"BEGIN READ WRITE, then INSERT",
			[]string{"BEGIN READ WRITE", "INSERT INTO peers (name) VALUES ('x')"},
			[]string{pgerrcode.ReadOnlySQLTransaction, pgerrcode.ReadOnlySQLTransaction}},
		{"BEGIN, SET TRANSACTION READ WRITE, then INSERT",
			[]string{"BEGIN; SET TRANSACTION READ WRITE", "INSERT INTO peers (name) VALUES ('x')"},
			[]string{pgerrcode.ReadOnlySQLTransaction, pgerrcode.InFailedSQLTransaction}},
		{"SET SESSION CHARACTERISTICS READ WRITE",
			[]string{"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"SET default_transaction_read_only = off, then write",
			[]string{"SET default_transaction_read_only = off", "DELETE FROM peers"},
			[]string{pgerrcode.ReadOnlySQLTransaction, pgerrcode.ReadOnlySQLTransaction}},
		{"RESET default_transaction_read_only",
			[]string{"RESET default_transaction_read_only"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"SET transaction_read_only = off",
			[]string{"SET transaction_read_only = off"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"set_config, then write",
			[]string{"SELECT set_config('default_transaction_read_only', 'off', false)", "UPDATE peers SET host = 'elsewhere'"},
			[]string{pgerrcode.ReadOnlySQLTransaction, pgerrcode.ReadOnlySQLTransaction}},
		{"set_config hidden from the checks, then write",
			[]string{"SELECT set_config('default_transaction_' || 'read_only', 'off', false) IS NULL",
				"SELECT 1 / (current_setting('default_transaction_read_only') = 'on')::int",
				"SELECT lo_create(0) IS NULL",
				"SELECT query_to_xml('SELECT lo_create(0)', true, true, '') IS NULL"},
			[]string{"", "", pgerrcode.ReadOnlySQLTransaction, pgerrcode.ReadOnlySQLTransaction}},
		{"advisory locks and other backends",
			[]string{"SELECT pg_advisory_lock(1)", "SELECT pg_terminate_backend(1)"},
			[]string{pgerrcode.ReadOnlySQLTransaction, pgerrcode.ReadOnlySQLTransaction}},
		{"SET ROLE postgres",
			[]string{"SET ROLE postgres"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"SET SESSION AUTHORIZATION postgres",
			[]string{"SET SESSION AUTHORIZATION postgres"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"set_config of role",
			[]string{"SELECT set_config('role', 'postgres', false)"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
		{"set_config of role hidden from the checks",
			[]string{"SELECT set_config('ro' || 'le', 'postgres', false)"},
			[]string{pgerrcode.InsufficientPrivilege}},
		{"reading the internal tables",
			[]string{"SELECT * FROM sluice.peers"},
			[]string{pgerrcode.InsufficientPrivilege}},
		{"reading server files",
			[]string{"SELECT pg_read_file('PG_VERSION')"},
			[]string{pgerrcode.InsufficientPrivilege}},
		{"COPY",
			[]string{"COPY peers TO STDOUT"},
			[]string{pgerrcode.FeatureNotSupported}},
		{"DO block",
			[]string{"DO $$ BEGIN DELETE FROM sluice.peers; END $$"},
			[]string{pgerrcode.ReadOnlySQLTransaction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := connect(t, s.URL())
			for i, sql := range tt.steps {
				_, err := conn.Exec(ctx, sql)
				if tt.codes[i] == "" {
					if err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
					continue
				}
				wantError(t, err, tt.codes[i])
			}
			_, _ = conn.Exec(ctx, "ROLLBACK")
			if got := catalogState(t, s); got != before {
				t.Fatalf("the catalog changed:\n got %s\nwant %s", got, before)
			}
		})
	}

	// The session is the unprivileged reader, and says so.
	conn := connect(t, setup.Config().ConnString())
	var super, user string
	if err := conn.QueryRow(ctx, "SELECT current_setting('is_superuser'), current_user").Scan(&super, &user); err != nil {
		t.Fatal(err)
	}
	if super != "off" || !strings.HasPrefix(user, "sluice_reader_") {
		t.Errorf("is_superuser = %s, current_user = %s", super, user)
	}
	if got := conn.PgConn().ParameterStatus("is_superuser"); got != "off" {
		t.Errorf("ParameterStatus is_superuser = %q", got)
	}
	// The status views still work for it.
	var n int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM peers) + (SELECT count(*) FROM mirrors) + "+
		"(SELECT count(*) FROM mirror_tables) + (SELECT count(*) FROM mirror_events)").Scan(&n); err != nil || n != 1 {
		t.Fatalf("status views: %d, %v", n, err)
	}
}

// TestFederatedBypasses tries the ways to write a peer through a query
// that names it (peer.schema.table): each is refused, and the peer's data
// is unchanged. EXECUTE is the way to write.
func TestFederatedBypasses(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	conn := connect(t, s.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	mustExec(t, conn, `EXECUTE src($$
CREATE TABLE t (a int);
INSERT INTO t VALUES (1), (2);
CREATE FUNCTION add_row() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO t VALUES (99) RETURNING 1';
$$)`)
	direct := connect(t, db)
	state := func() string {
		var s string
		if err := direct.QueryRow(ctx, `SELECT string_agg(a::text, ',' ORDER BY a) || ';' ||
			(SELECT count(*) FROM pg_class WHERE relname = 'made_here') FROM t`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := state()
	tests := []struct{ name, sql, code string }{
		{"CREATE VIEW", "CREATE VIEW src.public.made_here AS SELECT 1", pgerrcode.FeatureNotSupported},
		{"data-modifying CTE", "WITH gone AS (DELETE FROM src.public.t RETURNING a) SELECT count(*) FROM gone", pgerrcode.FeatureNotSupported},
		{"SELECT INTO", "SELECT a INTO src.public.made_here FROM src.public.t", pgerrcode.FeatureNotSupported},
		{"EXPLAIN ANALYZE of a write", "EXPLAIN ANALYZE DELETE FROM src.public.t", pgerrcode.FeatureNotSupported},
		{"SELECT FOR UPDATE", "SELECT a FROM src.public.t FOR UPDATE", pgerrcode.FeatureNotSupported},
		{"COPY", "COPY (SELECT a FROM src.public.t) TO STDOUT", pgerrcode.FeatureNotSupported},
		// Refused before it is sent: only known-safe functions may run
		// (peerguard_funcs.go).
		{"a volatile function that writes", "SELECT add_row() FROM src.public.t", pgerrcode.InsufficientPrivilege},
		{"set_config", "SELECT set_config('default_transaction_read_only', 'off', false) FROM src.public.t", pgerrcode.FeatureNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := conn.Exec(ctx, tt.sql)
			wantError(t, err, tt.code)
			if got := state(); got != before {
				t.Fatalf("the peer changed: %s, was %s", got, before)
			}
		})
	}
	t.Run("read-only mode turned off where the checks cannot see", func(t *testing.T) {
		// set_config is volatile: refused whatever its arguments.
		_, err := conn.Exec(ctx, "SELECT set_config('default_transaction_' || 'read_only', 'off', false) FROM src.public.t")
		wantError(t, err, pgerrcode.InsufficientPrivilege)
		var ro string
		if err := conn.QueryRow(ctx, "SELECT current_setting('transaction_read_only') FROM src.public.t LIMIT 1").Scan(&ro); err != nil || ro != "on" {
			t.Fatalf("transaction_read_only on the peer = %q, %v", ro, err)
		}
		if got := state(); got != before {
			t.Fatalf("the peer changed: %s, was %s", got, before)
		}
	})
	// EXECUTE still writes.
	mustExec(t, conn, "EXECUTE src('SELECT add_row()')")
	if got := state(); got == before {
		t.Fatal("EXECUTE did not write")
	}
}

// TestExtendedProtocolReadOnly checks the same refusals through Parse.
func TestExtendedProtocolReadOnly(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	for _, sql := range []string{
		"WITH gone AS (DELETE FROM peers RETURNING name) SELECT count(*) FROM gone WHERE $1::int > 0",
		"SELECT $1::int AS a INTO made_here",
	} {
		_, err := conn.Exec(ctx, sql, 1)
		wantError(t, err, pgerrcode.ReadOnlySQLTransaction)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM peers WHERE $1", true).Scan(&n); err != nil {
		t.Fatal(err)
	}
}
