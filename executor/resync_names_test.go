package executor_test

import (
	"testing"
)

// userTables are tables a user made on the destination under the names a
// resync of users or acct would first think of for its temporary tables.
var userTables = []string{"users_resync", "users_resync_1", "users_swapped0", "users_sluice_old", "acct_sluice_old"}

// checkUserTables checks that every table of userTables still holds its
// one row.
func (f *mirrorFixture) checkUserTables(t *testing.T, when string) {
	t.Helper()
	for _, name := range userTables {
		var keep string
		if err := f.dst.QueryRow(testCtx(t), "SELECT keep_me FROM "+name).Scan(&keep); err != nil || keep != "mine" {
			t.Fatalf("%s: the user's table %s has %q (%v), want its row 'mine'", when, name, keep, err)
		}
	}
}

// TestResyncLeavesOtherTables resyncs tables whose temporary names are
// taken on the destination, by a user's tables and by a mirrored table
// (acct_resync, beside acct): RESYNC TABLE with the swap strategy and
// RESYNC MIRROR pick other names and leave every one of those tables, its
// rows and its mirroring alone.
func TestResyncLeavesOtherTables(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE users (id int PRIMARY KEY, v text);
		CREATE TABLE acct (id int PRIMARY KEY, v text);
		CREATE TABLE acct_resync (id int PRIMARY KEY, v text);
		INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 500) g;
		INSERT INTO acct SELECT g, 'a' || g FROM generate_series(1, 300) g;
		INSERT INTO acct_resync SELECT g, 'r' || g FROM generate_series(1, 200) g`)
	for _, name := range userTables {
		mustExec(t, f.dst, "CREATE TABLE "+name+" (keep_me text); INSERT INTO "+name+" VALUES ('mine')")
	}
	mustExec(t, f.conn, `CREATE MIRROR names FROM src TO dst WITH TABLE MAPPING (users:users, acct:acct, acct_resync:acct_resync)`)
	f.waitStatus(t, "names", "RUNNING")
	for _, tbl := range []string{"users", "acct", "acct_resync"} {
		waitEqual(t, f.src, f.dst, tbl, tbl, "id")
	}

	for _, tbl := range []string{"users", "acct"} {
		mustExec(t, f.src, "UPDATE "+tbl+" SET v = v || '!' WHERE id % 7 = 0")
		mustExec(t, f.conn, "RESYNC TABLE names.public."+tbl+" WITH (strategy = 'swap')")
		f.waitResync(t, "names", "public."+tbl, "done")
		f.waitStatus(t, "names", "RUNNING")
		f.checkUserTables(t, "after RESYNC TABLE "+tbl)
		// acct_resync is still there and still mirrored.
		mustExec(t, f.src, "INSERT INTO acct_resync VALUES (1000 + (SELECT count(*) FROM acct_resync), 'after "+tbl+"')")
		for _, tbl := range []string{"users", "acct", "acct_resync"} {
			waitEqual(t, f.src, f.dst, tbl, tbl, "id")
		}
	}

	mustExec(t, f.src, "DELETE FROM acct_resync WHERE id <= 5")
	mustExec(t, f.conn, "RESYNC MIRROR names")
	f.waitResync(t, "names", "public.acct_resync", "done")
	f.waitStatus(t, "names", "RUNNING")
	f.checkUserTables(t, "after RESYNC MIRROR")
	mustExec(t, f.src, "INSERT INTO acct_resync VALUES (5000, 'after the mirror resync'); UPDATE acct SET v = 'x' WHERE id = 1")
	for _, tbl := range []string{"users", "acct", "acct_resync"} {
		waitEqual(t, f.src, f.dst, tbl, tbl, "id")
	}
	var status string
	if err := f.conn.QueryRow(ctx, "SELECT status FROM mirrors WHERE name = 'names'").Scan(&status); err != nil || status != "RUNNING" {
		t.Fatalf("mirror status %q (%v), want RUNNING", status, err)
	}
	// Sluice's own temporary tables are all gone, and so are their records.
	var left int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'
		AND tablename NOT IN ('users', 'acct', 'acct_resync', 'users_resync', 'users_resync_1', 'users_swapped0',
			'users_sluice_old', 'acct_sluice_old')`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d temporary tables left behind (%v)", left, err)
	}
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM _sluice.owned_tables`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d temporary tables still recorded (%v)", left, err)
	}

	// DROP MIRROR drops what Sluice recorded, not the user's tables.
	mustExec(t, f.conn, "DROP MIRROR names")
	f.checkUserTables(t, "after DROP MIRROR")
}
