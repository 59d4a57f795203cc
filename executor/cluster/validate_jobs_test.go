package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// VALIDATE MIRROR as a River job (executor/replication/validate_jobs.go),
// with two nodes on one catalog: issued on the node that does not run the
// mirror, the validation runs as a validate job on the node that does,
// without moving the stream, and the statement returns its rows; a second
// VALIDATE of the mirror meanwhile is refused; the statement cancelled
// cancels the job, and the mirror goes on streaming.
func TestValidateJobOnOwner(t *testing.T) {
	n := startTwoNodes(t, "vj")
	cat, src, dst, first, owner, other := n.cat, n.src, n.dst, n.first, n.owner, n.other
	oc := connect(t, other.URL())

	mustExec(t, src, "UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid <= 3")
	for table, r := range testbed.ValidateRows(t, oc, "VALIDATE MIRROR vj WITH (mode = checksum)") {
		if r.Status != "equal" {
			t.Errorf("validation from the other node: %s is %s (%d, %d rows)", table, r.Status, r.Source, r.Dest)
		}
	}
	if l := leaseOf(t, cat, "vj"); l.node != first.node || l.epoch != first.epoch {
		t.Fatalf("VALIDATE MIRROR on the other node moved the stream: %+v, was %+v", l, first)
	}
	var node, state string
	if err := cat.QueryRow(testCtx(t), `SELECT node, state FROM sluice_status.jobs WHERE kind = 'validate' AND mirror = 'vj'`).
		Scan(&node, &state); err != nil || node != first.node || state != "completed" {
		t.Fatalf("the validate job: node %s, %s (%v); want the owner %s, completed", node, state, err, first.node)
	}
	var recorded int
	if err := cat.QueryRow(testCtx(t), `SELECT count(*) FROM sluice_status.mirror_validations WHERE mirror = 'vj'`).Scan(&recorded); err != nil ||
		recorded != 3 {
		t.Fatalf("%d rows in mirror_validations (%v), want 3", recorded, err)
	}

	// A validation that waits, on a lock: the test's transaction that
	// holds it has a transaction id (an ACCESS EXCLUSIVE lock takes one),
	// and the source shares the destination's server, so the validation's
	// snapshot (a slot) waits for that transaction to end.
	lock, err := dst.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(testCtx(t), "LOCK TABLE pgbench_branches IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		_, err := oc.Exec(ctx, "VALIDATE MIRROR vj TABLE pgbench_branches")
		ended <- err
	}()
	waitValidateRunning(t, cat, "vj", first.node)
	// A third, on the owner, meanwhile: refused, naming the first's node.
	ownerConn := connect(t, owner.URL())
	_, err = ownerConn.Exec(testCtx(t), "VALIDATE MIRROR vj")
	if e := testbed.WantError(t, err, "55000"); !strings.Contains(e.Message, "another validation") || !strings.Contains(e.Message, first.node) {
		t.Fatalf("a validation while another runs: %q, want another validation under way on %s", e.Message, first.node)
	}
	waitOnLock(t, n.dstURL, lock)
	cancel()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("the cancelled VALIDATE MIRROR succeeded")
		}
		t.Logf("the cancelled statement: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled VALIDATE MIRROR did not end within 30 s")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var states string
		if err := cat.QueryRow(testCtx(t), `SELECT string_agg(state, ' ' ORDER BY state) FROM sluice_status.jobs
WHERE kind = 'validate' AND mirror = 'vj' AND "table" IS NOT NULL`).Scan(&states); err != nil {
			t.Fatal(err)
		}
		if states == "cancelled" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled statement's job is %q, want cancelled", states)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := lock.Rollback(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The mirror goes on streaming, on its node.
	mustExec(t, src, "UPDATE pgbench_branches SET bbalance = bbalance + 7")
	waitEqual(t, src, dst, "pgbench_branches", "pgbench_branches", "bid")
	if l := leaseOf(t, cat, "vj"); l.node != first.node || l.epoch != first.epoch {
		t.Fatalf("the cancelled validation moved the stream: %+v, was %+v", l, first)
	}
	// The next validation of the mirror runs.
	if rows := testbed.ValidateRows(t, connect(t, other.URL()), "VALIDATE MIRROR vj TABLE pgbench_branches"); rows["public.pgbench_branches"].Status != "equal" {
		t.Fatalf("the validation after the cancelled one: %+v", rows)
	}
}

// A validation whose node (the mirror's owner) is killed while it runs is
// made available again, moved to the queue of the node that takes the
// stream over, and run there: the statement, issued on that other node,
// returns its rows.
func TestValidateJobOwnerKilled(t *testing.T) {
	n := startTwoNodes(t, "vk")
	cat, dst, first, owner, other := n.cat, n.dst, n.first, n.owner, n.other
	otherID := nodeSet{t: t, cat: cat}.id(other)

	lock, err := dst.Begin(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(testCtx(t), "LOCK TABLE pgbench_branches IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	oc := connect(t, other.URL())
	type result struct {
		rows map[string]testbed.ValidationRow
		err  error
	}
	ended := make(chan result, 1)
	go func() {
		rows, err := oc.Query(context.Background(), "VALIDATE MIRROR vk TABLE pgbench_branches", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			ended <- result{err: err}
			return
		}
		out := map[string]testbed.ValidationRow{}
		for rows.Next() {
			var r testbed.ValidationRow
			if err := rows.Scan(&r.Table, &r.Source, &r.Dest, &r.Ranges, &r.Status); err != nil {
				ended <- result{err: err}
				return
			}
			out[r.Table] = r
		}
		ended <- result{rows: out, err: rows.Err()}
	}()
	waitValidateRunning(t, cat, "vk", first.node)
	waitOnLock(t, n.dstURL, lock)
	owner.Kill()
	killed := time.Now()
	if err := lock.Rollback(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-ended:
		if r.err != nil {
			t.Fatalf("VALIDATE MIRROR after its node was killed: %v", r.err)
		}
		if r.rows["public.pgbench_branches"].Status != "equal" {
			t.Fatalf("VALIDATE MIRROR after its node was killed: %+v", r.rows)
		}
	case <-time.After(time.Minute):
		t.Fatal("VALIDATE MIRROR did not end within a minute of its node's kill")
	}
	var node, state string
	var attempt int
	if err := cat.QueryRow(testCtx(t), `SELECT node, state, attempt FROM sluice_status.jobs WHERE kind = 'validate' AND mirror = 'vk'`).
		Scan(&node, &state, &attempt); err != nil || node != otherID || state != "completed" || attempt != 2 {
		t.Fatalf("the validate job: node %s, %s, attempt %d (%v); want %s, completed, 2", node, state, attempt, err, otherID)
	}
	if l := leaseOf(t, cat, "vk"); l.node != otherID {
		t.Fatalf("the stream is on %s, want %s", l.node, otherID)
	}
	t.Logf("the validation ended %s after its node's kill", time.Since(killed).Round(100*time.Millisecond))
}

// waitValidateRunning waits until the mirror's validate job runs on node.
func waitValidateRunning(t *testing.T, cat *pgx.Conn, mirror, node string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var running int
		if err := cat.QueryRow(testCtx(t), `SELECT count(*) FROM sluice_status.jobs
WHERE kind = 'validate' AND mirror = $1 AND state = 'running' AND node = $2`, mirror, node).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if running == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the validation's job of mirror %s did not start on node %s", mirror, node)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOnLock waits until a session of the peers' server waits for tx, the
// test's transaction that holds a lock: the validation's, however long it
// took to get there. (Its slot, being made, waits for tx to end: source
// and destination share the server.) It watches from a connection of its
// own to url, a database of that server: pg_stat_activity read in tx would
// show the sessions as they were at its first read.
func waitOnLock(t *testing.T, url string, tx pgx.Tx) {
	t.Helper()
	var holder int
	if err := tx.QueryRow(testCtx(t), `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	defer conn.Close(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting string
		if err := conn.QueryRow(testCtx(t), `SELECT coalesce(string_agg(format('%s %s %s/%s: %s', datname, backend_type, wait_event_type, wait_event, query), E'\n'), '')
FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))`, holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting != "" {
			t.Logf("waiting for the test's lock: %s", waiting)
			return
		}
		if time.Now().After(deadline) {
			var sessions string
			if err := conn.QueryRow(testCtx(t), `SELECT coalesce(string_agg(format('%s %s %s %s xid %s, %s/%s, blocked by %s: %s', pid, datname, backend_type, state,
  backend_xid, wait_event_type, wait_event, pg_blocking_pids(pid), query), E'\n'), '')
FROM pg_stat_activity WHERE pid <> pg_backend_pid()`).Scan(&sessions); err != nil {
				t.Fatal(err)
			}
			t.Fatalf("no session waits for the test's lock (held by %d); the server's sessions:\n%s", holder, sessions)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
