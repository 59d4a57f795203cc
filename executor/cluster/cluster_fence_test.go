package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The fences (docs/cluster.md): a node frozen with SIGSTOP past its lease
// (into Postgres, in the middle of a large transaction's batch) loses the
// mirror to another node, which takes the slot from the frozen node's
// walsender and claims the destination with its epoch, ending the frozen
// node's open destination transaction; woken with SIGCONT, the frozen
// node applies nothing, and the destination converges with the source row
// by row.
//
// The stale-node runs start the nodes with the fault injection that makes
// a node ignore the loss of its leases (SLUICE_FAULT_IGNORE_LEASE_LOSS:
// neither its heartbeat nor its watchdog stops its flow, which retries
// what the catalog refuses): the woken node goes on as if it still owned
// the stream, and only the destination's fencing token stops it, which
// the test shows by the event the refused node records.
func TestSIGSTOPFencing(t *testing.T) {
	t.Run("postgres", func(t *testing.T) { sigstopFailover(t, false, false) })
	t.Run("postgres-stale-node", func(t *testing.T) { sigstopFailover(t, false, true) })
	t.Run("clickhouse-stale-node", func(t *testing.T) { sigstopFailover(t, true, true) })
}

// destState is what a destination records for a mirror: the lease epoch
// that claimed it and its applied position.
type destState struct {
	epoch    int64
	position string
}

// sigstopFailover runs the test into a Postgres destination, or into
// ClickHouse when useCH; with nodes that ignore lost leases when stale.
func sigstopFailover(t *testing.T, useCH, stale bool) {
	const nodeTimeout = 5 * time.Second
	if stale {
		t.Setenv("SLUICE_FAULT_IGNORE_LEASE_LOSS", "1") // read by the processes started below
	}
	catURL := catalogCluster.NewDB(t)
	a := testbed.StartSluiceProcess(t, catURL, testbed.Password, "--node-timeout", nodeTimeout.String())
	b := testbed.StartSluiceProcess(t, catURL, testbed.Password, "--node-timeout", nodeTimeout.String())
	cat := connect(t, catURL)
	srcURL := peerCluster.NewDB(t)
	src := connect(t, srcURL)
	pgbench(t, srcURL, "-i", "-s", "1", "-q")

	conn := connect(t, a.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	var dst *pgx.Conn
	var ch *testbed.ClickHouse
	if useCH {
		ch = testbed.ClickHouseFor(t)
		mustExec(t, conn, fmt.Sprintf("CREATE PEER dst FROM CLICKHOUSE WITH (host = '127.0.0.1', port = %d)", ch.Port()))
	} else {
		dstURL := peerCluster.NewDB(t)
		dst = connect(t, dstURL)
		mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	}
	mustExec(t, conn, "CREATE MIRROR frz FROM src TO dst WITH TABLE MAPPING ("+testbed.PgbenchMapping+") WITH (max_batch_size = 200)")
	conn.Close(context.Background())
	waitStreaming(t, a, "frz")
	first := leaseOf(t, cat, "frz")
	owner, other := ownerAndOther(t, cat, first.node, a, b)
	// What the destination records, read as the flows record it.
	state := func() destState {
		t.Helper()
		var s destState
		if useCH {
			e := testbed.CHRows(t, ch, `SELECT toString(max(epoch)) FROM default._sluice_mirror_epoch WHERE mirror = 'frz'`)
			if _, err := fmt.Sscan(e[0], &s.epoch); err != nil {
				t.Fatalf("destination epoch %q: %v", e, err)
			}
			s.position = testbed.CHRows(t, ch, `SELECT argMax(position, (epoch, position)) FROM default._sluice_mirror_state WHERE mirror = 'frz'`)[0]
			return s
		}
		var pos *string
		err := dst.QueryRow(testCtx(t), `SELECT epoch, position FROM _sluice.mirror_state WHERE mirror = 'frz'`).Scan(&s.epoch, &pos)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if pos != nil {
			s.position = *pos
		}
		return s
	}
	// The stream claims the destination when it starts, after the load.
	for deadline := time.Now().Add(30 * time.Second); state().epoch != first.epoch; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the destination records %+v, the lease is at epoch %d", state(), first.epoch)
		}
	}
	if !useCH {
		// Every write of the mirror's metadata row, with the epoch it
		// carried: the frozen node's must not come after the new owner's.
		mustExec(t, dst, `CREATE TABLE public.fence_audit (epoch bigint, position text, pid int, at timestamptz DEFAULT clock_timestamp());
CREATE FUNCTION public.fence_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.fence_audit (epoch, position, pid) VALUES (NEW.epoch, NEW.position, pg_backend_pid()); RETURN NEW; END $$;
CREATE TRIGGER fence_audit AFTER INSERT OR UPDATE ON _sluice.mirror_state FOR EACH ROW EXECUTE FUNCTION public.fence_audit()`)
	}

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "25")
	}()
	time.Sleep(3 * time.Second)
	before := state()
	if !useCH {
		// Freeze the owner in the middle of a batch: a source transaction
		// of 100,000 rows, applied in one destination transaction that
		// holds the mirror's metadata row.
		mustExec(t, src, "UPDATE pgbench_accounts SET filler = 'frozen'")
		deadline := time.Now().Add(30 * time.Second)
		for {
			var open bool
			if err := dst.QueryRow(testCtx(t), `SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'sluice-cdc'
				AND datname = current_database() AND xact_start < now() - interval '300 ms'`).Scan(&open); err != nil {
				t.Fatal(err)
			}
			if open {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the owner never applied the large transaction")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	owner.Signal(syscall.SIGSTOP)
	frozenAt := time.Now()
	var moved lease
	for {
		moved = leaseOf(t, cat, "frz")
		if moved.node != "" && moved.node != first.node {
			break
		}
		if time.Since(frozenAt) > 30*time.Second {
			owner.Signal(syscall.SIGCONT)
			t.Fatalf("30 s after the owner froze, the lease is %+v", moved)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the lease moved %s after the freeze (node timeout %s): %+v", time.Since(frozenAt).Round(100*time.Millisecond), nodeTimeout, moved)
	if nodeOf(t, cat, moved.node, a, b) != other || moved.epoch <= first.epoch {
		owner.Signal(syscall.SIGCONT)
		t.Fatalf("lease after the freeze: %+v, want the other node at an epoch above %d", moved, first.epoch)
	}
	// The new owner streams while the old one is still frozen: it took
	// the slot from the frozen node's walsender (which the source would
	// keep for wal_sender_timeout, 60 s) and claimed the destination.
	var claimed, applied destState
	movedAt := time.Now()
	deadline := movedAt.Add(20 * time.Second)
	for claimed = state(); claimed.epoch != moved.epoch; claimed = state() {
		if time.Now().After(deadline) {
			owner.Signal(syscall.SIGCONT)
			t.Fatalf("20 s after the lease moved, the destination records %+v (before the freeze %+v, lease %+v)", claimed, before, moved)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for applied = state(); applied.position <= claimed.position; applied = state() {
		if time.Now().After(deadline) {
			owner.Signal(syscall.SIGCONT)
			t.Fatalf("20 s after the lease moved, the new owner applied nothing: the destination records %+v since its claim", applied)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := waitLeaseEvent(t, cat, "frz", "%walsender pid%", 5*time.Second)
	if !useCH {
		// And it ended the frozen node's open destination transaction,
		// which held the metadata row its claim needs.
		took += "; " + waitLeaseEvent(t, cat, "frz", "%destination session pid%", 5*time.Second)
	}
	t.Logf("taken over: %s; the new owner claimed the destination at %+v and applies (%+v) %s after the lease moved", took, claimed,
		applied, time.Since(movedAt).Round(100*time.Millisecond))
	if d := nodeTimeout + 2*time.Second - time.Since(frozenAt); d > 0 {
		time.Sleep(d) // frozen well past its lease
	}
	owner.Signal(syscall.SIGCONT)
	wokeAt := time.Now()

	// The woken node applies nothing: what the destination records never
	// goes back to its epoch or to an earlier position.
	last := state()
	for time.Since(wokeAt) < 5*time.Second {
		s := state()
		if s.epoch != moved.epoch || s.position < last.position {
			t.Fatalf("after the frozen node woke, the destination records %+v (was %+v; lease %+v)", s, last, moved)
		}
		last = s
		time.Sleep(50 * time.Millisecond)
	}
	if l := leaseOf(t, cat, "frz"); l.node != moved.node || l.epoch != moved.epoch {
		t.Fatalf("after the frozen node woke, the lease is %+v, was %+v", l, moved)
	}
	if stale {
		// The woken node, blind to its lost lease, tried again and the
		// destination refused its epoch.
		refused := waitLeaseEvent(t, cat, "frz", fmt.Sprintf("this node's (%s) lease epoch %d was superseded by epoch %d at the destination%%",
			first.node, first.epoch, moved.epoch), 30*time.Second)
		t.Logf("the woken node was refused by the destination: %s", refused)
	}
	<-load
	waitStreaming(t, other, "frz")
	if useCH {
		testbed.WaitSame(t, src, `SELECT aid || '|' || bid || '|' || abalance FROM pgbench_accounts ORDER BY aid`, ch,
			`SELECT concat(toString(aid), '|', toString(bid), '|', toString(abalance)) FROM default.pgbench_accounts FINAL
			WHERE _sluice_is_deleted = 0 ORDER BY aid`)
		testbed.WaitSame(t, src, `SELECT tid || '|' || tbalance FROM pgbench_tellers ORDER BY tid`, ch,
			`SELECT concat(toString(tid), '|', toString(tbalance)) FROM default.pgbench_tellers FINAL WHERE _sluice_is_deleted = 0 ORDER BY tid`)
		testbed.WaitSame(t, src, `SELECT bid || '|' || bbalance FROM pgbench_branches ORDER BY bid`, ch,
			`SELECT concat(toString(bid), '|', toString(bbalance)) FROM default.pgbench_branches FINAL WHERE _sluice_is_deleted = 0 ORDER BY bid`)
	} else {
		for _, tbl := range testbed.PgbenchTables {
			waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
		}
		var stale int
		var audit string
		if err := dst.QueryRow(testCtx(t), `SELECT count(*) FILTER (WHERE epoch < $1 AND at > (SELECT min(at) FROM public.fence_audit WHERE epoch >= $1)),
			string_agg(DISTINCT epoch::text, ',')
			FROM public.fence_audit`, moved.epoch).Scan(&stale, &audit); err != nil {
			t.Fatal(err)
		}
		if stale != 0 {
			t.Fatalf("%d writes of an earlier epoch after epoch %d claimed the destination (epochs written: %s)", stale, moved.epoch, audit)
		}
		t.Logf("epochs that wrote the destination's position: %s", audit)
	}
	// The woken node's flow stopped (its lease lost, or the destination
	// refused its epoch), without failing the mirror.
	log, err := os.ReadFile(owner.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	after := string(log)
	stopped := false
	for _, line := range strings.Split(after, "\n") {
		if strings.Contains(line, "stopping the mirror's flow here") || strings.Contains(line, "claimed by a later lease epoch") ||
			strings.Contains(line, "stream lease was lost") {
			t.Logf("the woken node: %s", line)
			stopped = true
		}
	}
	if !stopped {
		t.Errorf("the woken node's log does not say its flow stopped:\n%s", testbed.LastLines(after, 40))
	}
	// And it is alive: ending its sessions under it (the walsender, the
	// destination transaction in the middle of a COPY) crashed nothing.
	var alive int
	if err := connect(t, owner.URL()).QueryRow(testCtx(t), `SELECT count(*) FROM nodes`).Scan(&alive); err != nil || alive != 2 {
		t.Errorf("the woken node answers %d nodes (%v), want 2", alive, err)
	}
	oc := connect(t, other.URL())
	var status string
	if err := oc.QueryRow(testCtx(t), `SELECT status FROM mirrors WHERE name = 'frz'`).Scan(&status); err != nil || status != "RUNNING" {
		t.Errorf("mirror status %q (%v), want RUNNING", status, err)
	}
	for _, e := range testbed.PGRows(t, cat, `SELECT to_char(at, 'HH24:MI:SS.MS') || ' ' || kind || ': ' || message FROM sluice.mirror_events
		WHERE mirror = 'frz' AND kind IN ('lease', 'error') ORDER BY id`) {
		t.Logf("event %s", e)
	}
}

// waitLeaseEvent waits until the mirror has a lease event like pattern and
// returns its message.
func waitLeaseEvent(t *testing.T, cat *pgx.Conn, mirror, pattern string, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var msg string
		err := cat.QueryRow(testCtx(t), `SELECT message FROM sluice.mirror_events WHERE mirror = $1 AND kind = 'lease' AND message LIKE $2
			ORDER BY id LIMIT 1`, mirror, pattern).Scan(&msg)
		if err == nil {
			return msg
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lease event of mirror %s like %q within %s; events:\n%s", mirror, pattern, within,
				strings.Join(testbed.PGRows(t, cat, "SELECT kind || ': ' || message FROM sluice.mirror_events WHERE mirror = '"+mirror+"' ORDER BY id"), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
