package executor_test

import (
	"strings"
	"testing"
)

// A destination that records a later epoch than the mirror's current
// lease (the metadata of an earlier mirror of the name, or of another
// catalog's): the running flow is refused and stops, applying nothing;
// its restart's claim is refused too, and since the catalog says its
// lease is current, the mirror waits for the user with an error that says
// what to do, instead of restarting at every heartbeat. Once the records
// are removed, PAUSE and RESUME MIRROR make it stream again.
func TestFenceForeignEpoch(t *testing.T) {
	f := newMirrorFixture(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`)
	mustExec(t, f.conn, "CREATE MIRROR fe FROM src TO dst WITH TABLE MAPPING (t:t)")
	f.waitStatus(t, "fe", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	mustExec(t, f.dst, `UPDATE _sluice.mirror_state SET epoch = 1000 WHERE mirror = 'fe'`)
	mustExec(t, f.src, `INSERT INTO t VALUES (2, 'b')`)
	f.waitStatus(t, "fe", "FAILED")
	var msg string
	if err := f.conn.QueryRow(testCtx(t), "SELECT coalesce(error, '') FROM mirrors WHERE name = 'fe'").Scan(&msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "superseded by epoch 1000") || !strings.Contains(msg, "DROP MIRROR fe") {
		t.Fatalf("error %q, want it to name the destination's epoch and what to do", msg)
	}
	var n int
	if err := f.dst.QueryRow(testCtx(t), `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows at the destination (%v), want 1: the refused flow applied nothing", n, err)
	}
	// The running flow, refused at its next batch, says so (unless its
	// stream happened to restart first, whose claim was refused).
	for _, e := range pgRows(t, f.conn, `SELECT kind || ': ' || message FROM mirror_events WHERE mirror = 'fe' AND kind IN ('lease', 'error')`) {
		t.Logf("event %s", e)
	}
	mustExec(t, f.dst, `UPDATE _sluice.mirror_state SET epoch = 0 WHERE mirror = 'fe'`)
	mustExec(t, f.conn, "PAUSE MIRROR fe")
	mustExec(t, f.conn, "RESUME MIRROR fe")
	f.waitStatus(t, "fe", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
}
