package executor_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sluicedb/sluice/internal/testbed"
)

// dropState is what DROP MIRROR may change, read from every side.
type dropState struct {
	slots, pubs int    // of the source database
	tables      int    // destination tables of names
	mirrors     int    // catalog rows of the mirror
	status      string // the mirror's status, "" when gone
}

func (f *mirrorFixture) dropState(t *testing.T, mirror string, names ...string) dropState {
	t.Helper()
	ctx := testCtx(t)
	var s dropState
	if err := f.src.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()),
		(SELECT count(*) FROM pg_publication)`).Scan(&s.slots, &s.pubs); err != nil {
		t.Fatal(err)
	}
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1)`, names).
		Scan(&s.tables); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.QueryRow(ctx, `SELECT count(*), coalesce(max(status), '') FROM mirrors WHERE name = $1`, mirror).
		Scan(&s.mirrors, &s.status); err != nil {
		t.Fatal(err)
	}
	return s
}

// parentChild makes two source tables with a foreign key between them and
// a running mirror of both that recreates it on the destination.
func parentChild(t *testing.T, f *mirrorFixture, mirror string) {
	t.Helper()
	mustExec(t, f.src, `CREATE TABLE parent (id int PRIMARY KEY, v text);
		CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent);
		INSERT INTO parent VALUES (1, 'a'), (2, 'b'); INSERT INTO child VALUES (1, 1), (2, 2)`)
	mustExec(t, f.conn, fmt.Sprintf(`CREATE MIRROR %s FROM src TO dst WITH TABLE MAPPING (parent:parent, child:child)
		WITH (replicate_foreign_keys = true)`, mirror))
	f.waitStatus(t, mirror, "RUNNING")
	waitEqual(t, f.src, f.dst, "child", "child", "id")
	var fks int
	if err := f.dst.QueryRow(testCtx(t), `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid = 'child'::regclass`).
		Scan(&fks); err != nil || fks != 1 {
		t.Fatalf("the mirror did not create the foreign key on the destination: %d, %v", fks, err)
	}
}

// TestDropMirrorForeignKeys drops a mirror's tables linked by a foreign
// key Sluice made (replicate_foreign_keys), the referenced one mapped
// first: they go together, with the slot and the publication.
func TestDropMirrorForeignKeys(t *testing.T) {
	f := newMirrorFixture(t)
	parentChild(t, f, "fk")
	mustExec(t, f.conn, "DROP MIRROR fk WITH (drop_destination_tables = true)")
	if got := f.dropState(t, "fk", "parent", "child"); got != (dropState{}) {
		t.Fatalf("after DROP MIRROR: %+v, want nothing left", got)
	}
}

// wantUnchanged checks that a refused DROP MIRROR left everything as it
// was, and that the mirror still streams.
// With anyStatus, the status is not compared (the flow itself may fail
// while a peer is away) but must come back to RUNNING.
func (f *mirrorFixture) wantUnchanged(t *testing.T, mirror string, before dropState, anyStatus bool, names ...string) {
	t.Helper()
	got := f.dropState(t, mirror, names...)
	if anyStatus {
		got.status = before.status
	}
	if got != before {
		t.Fatalf("refused DROP MIRROR changed things: %+v, before %+v", got, before)
	}
	f.waitStatus(t, mirror, "RUNNING")
	var id int
	if err := f.src.QueryRow(testCtx(t), "SELECT coalesce(max(id), 0) + 1 FROM parent").Scan(&id); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.src, "INSERT INTO parent VALUES ($1, 'after')", id)
	waitEqual(t, f.src, f.dst, "parent", "parent", "id")
}

// wantRefusal checks a refused DROP MIRROR's code, that its message names
// what, and that its hint says the mirror is unchanged.
func wantRefusal(t *testing.T, err error, code, what string) {
	t.Helper()
	pe := wantError(t, err, code)
	if !strings.Contains(pe.Message, what) || !strings.Contains(pe.Hint, "unchanged") {
		t.Fatalf("message %q (hint %q): want it to name %s and say the mirror is unchanged", pe.Message, pe.Hint, what)
	}
}

// TestDropMirrorRefusedByDependents: a user's view on a destination table,
// or a user's foreign key onto one, stops drop_destination_tables up front
// with 2BP01 naming it, and nothing changes.
func TestDropMirrorRefusedByDependents(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	parentChild(t, f, "deps")
	before := f.dropState(t, "deps", "parent", "child")
	for _, tt := range []struct{ name, create, what, remove string }{
		{"view", "CREATE VIEW parent_names AS SELECT v FROM parent", "view public.parent_names", "DROP VIEW parent_names"},
		{"foreign key", "CREATE TABLE notes (parent_id int CONSTRAINT notes_parent REFERENCES parent)",
			"foreign key notes_parent on public.notes", "DROP TABLE notes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mustExec(t, f.dst, tt.create)
			_, err := f.conn.Exec(ctx, "DROP MIRROR deps WITH (drop_destination_tables = true)")
			wantRefusal(t, err, pgerrcode.DependentObjectsStillExist, tt.what)
			f.wantUnchanged(t, "deps", before, false, "parent", "child")
			mustExec(t, f.dst, tt.remove)
		})
	}
	var events int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'deps' AND kind IN ('error', 'dropped')`).
		Scan(&events); err != nil || events != 0 {
		t.Fatalf("refused drops left %d error or dropped events (%v)", events, err)
	}
	mustExec(t, f.conn, "DROP MIRROR deps WITH (drop_destination_tables = true)")
	if got := f.dropState(t, "deps", "parent", "child"); got != (dropState{}) {
		t.Fatalf("after DROP MIRROR: %+v, want nothing left", got)
	}
}

// TestDropMirrorPeerUnreachable: a peer that refuses connections stops
// DROP MIRROR before anything changes, on either side.
func TestDropMirrorPeerUnreachable(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	parentChild(t, f, "away")
	before := f.dropState(t, "away", "parent", "child")
	// Each peer's database is closed through a connection to the other.
	for _, peer := range []struct {
		name, url string
		other     *pgx.Conn
	}{{"destination", f.dstURL, f.src}, {"source", f.srcURL, f.dst}} {
		t.Run(peer.name, func(t *testing.T) {
			db := pgx.Identifier{testbed.DBName(peer.url)}.Sanitize()
			mustExec(t, peer.other, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false")
			_, err := f.conn.Exec(ctx, "DROP MIRROR away WITH (drop_destination_tables = true)")
			mustExec(t, peer.other, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
			// The peer's own refusal leads: 55000, its database does not
			// accept connections.
			wantRefusal(t, err, pgerrcode.ObjectNotInPrerequisiteState, peer.name+" peer")
			f.wantUnchanged(t, "away", before, true, "parent", "child")
		})
	}

	// With skip_unreachable_peers, an unreachable source is skipped: the mirror and its
	// destination tables go, a warning names the slot and publication
	// left on the source, and they are there.
	cfg, err := pgx.ParseConfig(f.s.URL())
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { warnings = append(warnings, n.Severity+": "+n.Message) }
	wconn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer wconn.Close(ctx)
	db := pgx.Identifier{testbed.DBName(f.srcURL)}.Sanitize()
	mustExec(t, f.dst, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS false")
	_, err = wconn.Exec(ctx, "DROP MIRROR away WITH (drop_destination_tables = true, skip_unreachable_peers = true)")
	mustExec(t, f.dst, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true")
	if err != nil {
		t.Fatalf("DROP MIRROR with skip_unreachable_peers: %v", err)
	}
	if len(warnings) != 1 || !strings.HasPrefix(warnings[0], "WARNING: ") ||
		!strings.Contains(warnings[0], `replication slot "sluice_away" and publication "sluice_away" stay on source peer "src"`) {
		t.Fatalf("warnings %q", warnings)
	}
	if got, want := f.dropState(t, "away", "parent", "child"), (dropState{slots: 1, pubs: 1}); got != want {
		t.Fatalf("after DROP MIRROR with skip_unreachable_peers: %+v, want %+v", got, want)
	}
	mustExec(t, f.src, "SELECT pg_drop_replication_slot('sluice_away'); DROP PUBLICATION sluice_away")
}

// TestDropMirrorSourceRefuses: the source refuses to drop the publication
// (an event trigger), after the destination tables were dropped in a
// transaction not yet committed: everything is as it was.
func TestDropMirrorSourceRefuses(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	parentChild(t, f, "keep")
	mustExec(t, f.src, `CREATE FUNCTION no_drop() RETURNS event_trigger LANGUAGE plpgsql AS
		$$BEGIN RAISE EXCEPTION 'publications are kept here'; END$$;
		CREATE EVENT TRIGGER no_drop ON ddl_command_start WHEN TAG IN ('DROP PUBLICATION') EXECUTE FUNCTION no_drop()`)
	before := f.dropState(t, "keep", "parent", "child")
	_, err := f.conn.Exec(ctx, "DROP MIRROR keep WITH (drop_destination_tables = true)")
	wantRefusal(t, err, pgerrcode.ObjectNotInPrerequisiteState, "publications are kept here")
	f.wantUnchanged(t, "keep", before, false, "parent", "child")
	mustExec(t, f.src, "DROP EVENT TRIGGER no_drop")
	mustExec(t, f.conn, "DROP MIRROR keep WITH (drop_destination_tables = true)")
	if got := f.dropState(t, "keep", "parent", "child"); got != (dropState{}) {
		t.Fatalf("after DROP MIRROR: %+v, want nothing left", got)
	}
}

// TestDropMirrorDestinationCommitFails: the destination's commit fails
// after the slot was dropped (a deferred trigger on Sluice's metadata).
// The error says what was dropped and does not claim the mirror is
// unchanged; the mirror shows FAILED with that error, and DROP MIRROR
// again finishes.
func TestDropMirrorDestinationCommitFails(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	parentChild(t, f, "half")
	mustExec(t, f.src, "INSERT INTO parent VALUES (3, 'c')") // the mirror records its position
	waitEqual(t, f.src, f.dst, "parent", "parent", "id")
	mustExec(t, f.dst, `CREATE FUNCTION no_commit() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN RAISE EXCEPTION 'not today'; END$$;
		CREATE CONSTRAINT TRIGGER no_commit AFTER DELETE ON _sluice.mirror_state
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION no_commit()`)
	_, err := f.conn.Exec(ctx, "DROP MIRROR half WITH (drop_destination_tables = true)")
	pe := wantError(t, err, pgerrcode.ObjectNotInPrerequisiteState)
	if strings.Contains(pe.Hint, "unchanged") || !strings.Contains(pe.Message, "slot and publication are dropped") ||
		!strings.Contains(pe.Message, "not today") || !strings.Contains(pe.Hint, "DROP MIRROR again") {
		t.Fatalf("message %q, hint %q: want what was dropped, the cause, and DROP MIRROR again", pe.Message, pe.Hint)
	}
	if got, want := f.dropState(t, "half", "parent", "child"), (dropState{tables: 2, mirrors: 1, status: "FAILED"}); got != want {
		t.Fatalf("after the failed commit: %+v, want %+v", got, want)
	}
	var msg string
	if err := f.conn.QueryRow(ctx, "SELECT error FROM mirrors WHERE name = 'half'").Scan(&msg); err != nil ||
		!strings.Contains(msg, "run DROP MIRROR again") {
		t.Fatalf("mirrors.error = %q, %v", msg, err)
	}
	mustExec(t, f.dst, "DROP TRIGGER no_commit ON _sluice.mirror_state")
	mustExec(t, f.conn, "DROP MIRROR half WITH (drop_destination_tables = true)")
	if got := f.dropState(t, "half", "parent", "child"); got != (dropState{}) {
		t.Fatalf("after DROP MIRROR again: %+v, want nothing left", got)
	}
}
