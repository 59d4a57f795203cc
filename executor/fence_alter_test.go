package executor_test

import (
	"strings"
	"testing"
)

// ALTER MIRROR ... DROP TABLE claims the destination with the epoch of the
// stream lease it stopped before it removes anything: a destination that
// records a later epoch (as after a node started the mirror's flow while
// the statement's node was frozen) refuses the removal, and the mirror is
// unchanged (its tables, its publication, the destination table). Once
// the later records are gone, the same statement removes the table.
func TestFenceAlterMirrorDropTable(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a VALUES (1, 'a'); INSERT INTO b VALUES (1, 'b')`)
	mustExec(t, f.conn, "CREATE MIRROR fa FROM src TO dst WITH TABLE MAPPING (a:a, b:b)")
	f.waitStatus(t, "fa", "RUNNING")
	waitEqual(t, f.src, f.dst, "b", "b", "id")
	mustExec(t, f.dst, `UPDATE _sluice.mirror_state SET epoch = 1000 WHERE mirror = 'fa'`)

	_, err := f.conn.Exec(ctx, "ALTER MIRROR fa DROP TABLE b WITH (drop_destination_table = true)")
	if err == nil || !strings.Contains(err.Error(), "superseded by epoch 1000") || !strings.Contains(err.Error(), "the mirror is unchanged") {
		t.Fatalf("DROP TABLE under a later epoch at the destination: %v; want it refused, the mirror unchanged", err)
	}
	if got := f.mirrorTableNames(t, "fa"); got != "public.a,public.b" {
		t.Fatalf("mirror tables %s after the refused drop", got)
	}
	if got := published(t, f.src, "sluice_fa"); got != "a,b" {
		t.Fatalf("publication has %s after the refused drop, want a,b", got)
	}
	var n int
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM b").Scan(&n); err != nil || n != 1 {
		t.Fatalf("destination table b after the refused drop: %d rows, %v; want it kept", n, err)
	}

	mustExec(t, f.dst, `UPDATE _sluice.mirror_state SET epoch = 0 WHERE mirror = 'fa'`)
	mustExec(t, f.conn, "ALTER MIRROR fa DROP TABLE b WITH (drop_destination_table = true)")
	if got := f.mirrorTableNames(t, "fa"); got != "public.a" {
		t.Fatalf("mirror tables %s after the drop", got)
	}
	var exists bool
	if err := f.dst.QueryRow(ctx, "SELECT to_regclass('public.b') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("destination table b after the drop: exists %v, %v", exists, err)
	}
}
