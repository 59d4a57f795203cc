package executor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// slotState is what a statement must not change about the mirror's slot:
// that it exists, where it has confirmed up to, and which slots exist.
func slotState(t *testing.T, src *pgx.Conn, slot string) string {
	t.Helper()
	var state string
	err := src.QueryRow(testCtx(t), `
SELECT coalesce((SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1), 'no slot') || ';' ||
       (SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots WHERE database = current_database()) || ';' ||
       (SELECT string_agg(pubname, ',' ORDER BY pubname) FROM pg_publication) || ';' ||
       (SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_publication_rel pr JOIN pg_class c ON c.oid = pr.prrelid)`,
		slot).Scan(&state)
	if err != nil {
		t.Fatal(err)
	}
	return state
}

// waitSlotIdle waits until no one streams from the slot, so that whoever
// asks for its changes next would get them.
func waitSlotIdle(t *testing.T, src *pgx.Conn, slot string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var active bool
		if err := src.QueryRow(testCtx(t), "SELECT active FROM pg_replication_slots WHERE slot_name = $1", slot).
			Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot %s still active", slot)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPeerGuardKeepsMirrorRows is issue 10 item 3: statements that would
// consume, advance or drop a mirror's slot or publication, through a
// federated SELECT, EXECUTE or the catalog, in either protocol, are refused
// before they reach the server, and every source row still reaches the
// destination. Ordinary federated reads still work.
func TestPeerGuardKeepsMirrorRows(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `
CREATE TABLE t (id int PRIMARY KEY, v text, at timestamptz DEFAULT '2024-03-04 05:06:07+00');
INSERT INTO t (id, v) SELECT g, 'row ' || g FROM generate_series(1, 3) g;
CREATE TABLE u (id int PRIMARY KEY, t_id int);
INSERT INTO u VALUES (1, 1), (2, 1), (3, 2);
CREATE SEQUENCE s;
CREATE FUNCTION add_row() RETURNS int LANGUAGE sql VOLATILE AS 'INSERT INTO u VALUES (99, 99) RETURNING 1';
CREATE FUNCTION app_lower(text) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT lower($1)';`)
	mustExec(t, f.conn, "CREATE MIRROR mk FROM src TO dst WITH TABLE MAPPING (t:t)")
	f.waitStatus(t, "mk", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	// Paused, the slot is free for anyone to read: a row waits in it.
	mustExec(t, f.conn, "PAUSE MIRROR mk")
	f.waitStatus(t, "mk", "PAUSED")
	waitSlotIdle(t, f.src, "sluice_mk")
	mustExec(t, f.src, "INSERT INTO t (id, v) VALUES (4, 'written while paused')")
	before := slotState(t, f.src, "sluice_mk")
	var seqBefore int64
	if err := f.src.QueryRow(ctx, "SELECT last_value FROM s").Scan(&seqBefore); err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		name, sql string
		args      []any
		mention   string // in the message
	}{
		// The three statements of the issue.
		{"create a slot", "SELECT pg_create_logical_replication_slot('evil', 'pgoutput') FROM src.public.t", nil,
			"pg_create_logical_replication_slot()"},
		{"consume the mirror's changes", "SELECT count(*) FROM src.public.t, pg_logical_slot_get_binary_changes('sluice_mk', " +
			"NULL, NULL, 'proto_version', '1', 'publication_names', 'sluice_mk')", nil, `mirror "mk"`},
		{"advance the mirror's slot", "SELECT pg_replication_slot_advance('sluice_mk', pg_current_wal_lsn()) FROM src.public.t",
			nil, `mirror "mk"`},
		// The same through the extended protocol, the slot as a parameter.
		{"advance, extended protocol", "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn()) FROM src.public.t",
			[]any{"sluice_mk"}, "pg_replication_slot_advance()"},
		{"peek, extended protocol", "SELECT count(*) FROM src.public.t, pg_logical_slot_peek_changes('sluice_mk', NULL, NULL) " +
			"WHERE t.id > $1", []any{0}, `mirror "mk"`},
		// A slot named by an expression cannot be shown to be another.
		{"slot from a column", "SELECT pg_drop_replication_slot(slot_name) FROM src.pg_catalog.pg_replication_slots", nil,
			"not named by a string constant"},
		// Functions with effects, even on nothing of a mirror's.
		{"nextval", "SELECT nextval('s') FROM src.public.t", nil, "nextval()"},
		{"nextval, extended protocol", "SELECT nextval('s') FROM src.public.t WHERE id > $1", []any{0}, "nextval()"},
		{"a volatile user function that writes", "SELECT add_row() FROM src.public.t", nil, "add_row()"},
		{"a user function, even immutable", "SELECT app_lower(v) FROM src.public.t", nil, "app_lower()"},
		{"set_config hidden from the read-only checks",
			"SELECT set_config('default_transaction_' || 'read_only', 'off', false) FROM src.public.t", nil, "set_config()"},
		// EXECUTE runs anything, but not on a mirror's slot or publication.
		{"EXECUTE drops the mirror's slot", "EXECUTE src('SELECT pg_drop_replication_slot(''sluice_mk'')')", nil, `mirror "mk"`},
		{"EXECUTE consumes the mirror's slot",
			"EXECUTE src($$SELECT * FROM pg_logical_slot_get_changes('sluice_mk', NULL, NULL, 'proto_version', '1', " +
				"'publication_names', 'sluice_mk')$$)", nil, `mirror "mk"`},
		{"EXECUTE copies the mirror's slot", "EXECUTE src($$SELECT pg_copy_logical_replication_slot('sluice_mk', 'copy')$$)", nil,
			`mirror "mk"`},
		{"EXECUTE drops the mirror's publication", "EXECUTE src('DROP PUBLICATION sluice_mk')", nil, `mirror "mk"`},
		{"EXECUTE alters the mirror's publication", "EXECUTE src('CREATE TABLE w (a int); ALTER PUBLICATION sluice_mk DROP TABLE t')",
			nil, `mirror "mk"`},
		{"EXECUTE with the slot in an expression", "EXECUTE src($$SELECT pg_drop_replication_slot('sluice_' || 'mk')$$)", nil,
			"not named by a string constant"},
		{"EXECUTE with the call in a DO block",
			"EXECUTE src($q$DO $$ BEGIN PERFORM pg_replication_slot_advance('sluice_mk', pg_current_wal_lsn()); END $$$q$)", nil,
			"function body"},
		{"EXECUTE, extended protocol", "EXECUTE src('SELECT pg_drop_replication_slot(''sluice_mk'')')", []any{},
			`mirror "mk"`},
		// The catalog is a Postgres server too.
		{"on the catalog", "SELECT pg_drop_replication_slot('sluice_mk')", nil, `mirror "mk"`},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.args != nil {
				var rows pgx.Rows
				rows, err = f.conn.Query(ctx, tt.sql, tt.args...)
				if err == nil {
					rows.Close()
					err = rows.Err()
				}
			} else {
				_, err = f.conn.Exec(ctx, tt.sql, pgx.QueryExecModeSimpleProtocol)
			}
			pe := wantError(t, err, pgerrcode.InsufficientPrivilege)
			if !strings.Contains(pe.Message, tt.mention) {
				t.Errorf("message %q does not mention %s", pe.Message, tt.mention)
			}
			if pe.Hint == "" || pe.Detail == "" {
				t.Errorf("no hint or detail: %+v", pe)
			}
			if got := slotState(t, f.src, "sluice_mk"); got != before {
				t.Fatalf("the source's slots or publications changed:\n got %s\nwant %s", got, before)
			}
		})
	}
	var seq int64
	var extra int
	if err := f.src.QueryRow(ctx, "SELECT last_value, (SELECT count(*) FROM u WHERE id = 99) FROM s").Scan(&seq, &extra); err != nil ||
		seq != seqBefore || extra != 0 {
		t.Fatalf("the source changed: sequence %d (was %d), %d rows written, %v", seq, seqBefore, extra, err)
	}

	// Federated reads as usual, in both protocols.
	reads := []struct{ sql, want string }{
		{"SELECT count(*) FROM src.public.t", "4"},
		{"SELECT string_agg(lower(upper(v)), '|' ORDER BY id) FROM src.public.t WHERE id <= 2", "row 1|row 2"},
		{"SELECT count(*) FROM src.public.t JOIN src.public.u ON u.t_id = t.id", "3"},
		{"SELECT min(date_trunc('day', at AT TIME ZONE 'UTC'))::text FROM src.public.t", "2024-03-04 00:00:00"},
		{"SELECT (now() >= at AND clock_timestamp() >= now() AND random() < 1)::text FROM src.public.t WHERE id = 1", "true"},
		{"SELECT sum(id)::text || ':' || avg(id)::numeric(4,2) || ':' || max(v) FROM src.public.t", "10:2.50:written while paused"},
		{"SELECT CAST(id AS text) || '/' || (id * 1.5)::int || '/' || extract(year FROM at) FROM src.public.t WHERE id = 3",
			"3/5/2024"},
		{"SELECT count(*) FROM src.public.t, generate_series(1, 2) g WHERE coalesce(v, '') <> ''", "8"},
		{"SELECT current_setting('transaction_read_only') FROM src.public.t WHERE id = 1", "on"},
		{"SELECT pg_catalog.length(v)::text FROM src.public.t WHERE id = 1", "5"},
	}
	for _, r := range reads {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
			var got string
			if err := f.conn.QueryRow(ctx, r.sql, mode).Scan(&got); err != nil || got != r.want {
				t.Errorf("%s (mode %v) = %q, %v; want %q", r.sql, mode, got, err, r.want)
			}
		}
	}
	// EXECUTE still acts on a slot that is no mirror's.
	mustExec(t, f.conn, "EXECUTE src($$SELECT pg_create_logical_replication_slot('mine', 'pgoutput')$$)")
	mustExec(t, f.conn, "EXECUTE src($$SELECT pg_drop_replication_slot('mine')$$)")

	// Nothing was lost: the row written while paused arrives, and so does
	// the next one.
	mustExec(t, f.conn, "RESUME MIRROR mk")
	f.waitStatus(t, "mk", "RUNNING")
	mustExec(t, f.src, "INSERT INTO t (id, v) VALUES (5, 'written after')")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
}

// TestPeerGuardFunctionsChange checks that the allow-list's verdicts follow
// a peer whose functions EXECUTE changed: a built-in shadowed by a user's
// function of the same name is no longer allowed.
func TestPeerGuardFunctionsChange(t *testing.T) {
	s := startSluice(t, testbed.Options{})
	conn := connect(t, s.URL())
	ctx := testCtx(t)
	db := peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(db)+")")
	mustExec(t, conn, "EXECUTE src('CREATE TABLE t (a text); INSERT INTO t VALUES (''X'')')")
	var got string
	if err := conn.QueryRow(ctx, "SELECT lower(a) FROM src.public.t").Scan(&got); err != nil || got != "x" {
		t.Fatalf("lower = %q, %v", got, err)
	}
	mustExec(t, conn, `EXECUTE src($$CREATE FUNCTION public.lower(integer) RETURNS text LANGUAGE sql VOLATILE AS 'SELECT ''shadow'''$$)`)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheDescribe} {
		_, err := conn.Exec(ctx, "SELECT lower(a) FROM src.public.t", mode)
		pe := wantError(t, err, pgerrcode.InsufficientPrivilege)
		if !strings.Contains(pe.Detail, "public.lower") {
			t.Errorf("detail %q does not name public.lower", pe.Detail)
		}
	}
	// Qualified, the built-in is still allowed.
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.lower(a) FROM src.public.t").Scan(&got); err != nil || got != "x" {
		t.Fatalf("pg_catalog.lower = %q, %v", got, err)
	}
}
