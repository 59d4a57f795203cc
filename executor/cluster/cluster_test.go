package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// Several sluice serve processes on one catalog (docs/cluster.md): each a
// node; a mirror's stream runs on the node holding its lease.

// lease is a mirror's stream lease as the catalog has it.
type lease struct {
	node    string
	epoch   int64
	expires time.Time
}

// leaseOf reads the mirror's lease from the catalog.
func leaseOf(t *testing.T, cat *pgx.Conn, mirror string) lease {
	t.Helper()
	var l lease
	var node *string
	var expires *time.Time
	err := cat.QueryRow(testCtx(t), `SELECT node, lease_epoch, lease_expires_at FROM sluice.mirrors WHERE name = $1`, mirror).
		Scan(&node, &l.epoch, &expires)
	if err != nil {
		t.Fatal(err)
	}
	if node != nil {
		l.node = *node
	}
	if expires != nil {
		l.expires = *expires
	}
	return l
}

// walsenders counts the source database's walsenders (readers of its
// replication slots).
func walsenders(t *testing.T, src *pgx.Conn) int {
	t.Helper()
	var n int
	if err := src.QueryRow(testCtx(t), `SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND active`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ownerAndOther returns which of a and b is node id, and the other one.
func ownerAndOther(t *testing.T, cat *pgx.Conn, id string, a, b *testbed.SluiceProcess) (owner, other *testbed.SluiceProcess) {
	t.Helper()
	switch nodeOf(t, cat, id, a, b) {
	case a:
		return a, b
	case b:
		return b, a
	}
	t.Fatalf("the mirror's node %s is neither process", id)
	return nil, nil
}

// waitStreaming waits until mirror streams (RUNNING) on some node, as
// seen from p.
func waitStreaming(t *testing.T, p *testbed.SluiceProcess, mirror string) {
	t.Helper()
	p.WaitFor("mirror "+mirror+" streaming", func(c *pgx.Conn) bool {
		var status string
		var node *string
		return c.QueryRow(context.Background(), `SELECT status, node FROM mirrors WHERE name = $1`, mirror).Scan(&status, &node) == nil &&
			status == "RUNNING" && node != nil
	}, nil)
}

// nodeOf returns which of procs has node id id (by its listen address in
// the nodes table); nil when none.
func nodeOf(t *testing.T, cat *pgx.Conn, id string, procs ...*testbed.SluiceProcess) *testbed.SluiceProcess {
	t.Helper()
	var addr string
	if err := cat.QueryRow(testCtx(t), `SELECT address FROM sluice.nodes WHERE id = $1`, id).Scan(&addr); err != nil {
		t.Fatalf("node %q: %v", id, err)
	}
	for _, p := range procs {
		if strings.Contains(p.URL(), "@"+addr+"/") {
			return p
		}
	}
	return nil
}

// twoNodes is two `sluice serve` processes on one catalog (node timeout
// 5 s) streaming a mirror of pgbench's tables (scale 1): startTwoNodes.
type twoNodes struct {
	a, b           *testbed.SluiceProcess
	cat            *pgx.Conn
	srcURL, dstURL string
	src, dst       *pgx.Conn
	// first is the mirror's lease once it streams, on owner.
	first        lease
	owner, other *testbed.SluiceProcess
}

// startTwoNodes starts two nodes and the mirror, created on the first
// node, and returns once it streams.
func startTwoNodes(t *testing.T, mirror string) *twoNodes {
	t.Helper()
	catURL := catalogCluster.NewDB(t)
	n := &twoNodes{
		a:      testbed.StartSluiceProcess(t, catURL, testbed.Password, "--node-timeout", "5s"),
		b:      testbed.StartSluiceProcess(t, catURL, testbed.Password, "--node-timeout", "5s"),
		cat:    connect(t, catURL),
		srcURL: peerCluster.NewDB(t), dstURL: peerCluster.NewDB(t),
	}
	n.src, n.dst = connect(t, n.srcURL), connect(t, n.dstURL)
	pgbench(t, n.srcURL, "-i", "-s", "1", "-q")
	conn := connect(t, n.a.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(n.srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(n.dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR "+mirror+" FROM src TO dst WITH TABLE MAPPING ("+testbed.PgbenchMapping+")")
	conn.Close(context.Background())
	waitStreaming(t, n.b, mirror)
	n.first = leaseOf(t, n.cat, mirror)
	n.owner, n.other = ownerAndOther(t, n.cat, n.first.node, n.a, n.b)
	return n
}

// A single node killed with SIGKILL and restarted takes its mirror's
// stream back at once: it is the same node (its id is kept in its data
// dir), so it does not wait for the lease its last run held to expire.
func TestRestartResumesAtOnce(t *testing.T) {
	p := testbed.StartSluiceProcess(t, catalogCluster.NewDB(t), testbed.Password)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g`)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR one FROM src TO dst WITH TABLE MAPPING (t:t)")
	conn.Close(context.Background())
	p.WaitFor("streaming", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'one'`).Scan(&status) == nil && status == "RUNNING"
	}, nil)
	cat := connect(t, p.CatalogURL())
	before := leaseOf(t, cat, "one")
	if before.node == "" || before.epoch == 0 {
		t.Fatalf("a running mirror without a lease: %+v", before)
	}
	p.Kill()
	killed := leaseOf(t, cat, "one") // its last renewal: it would expire then
	mustExec(t, src, `INSERT INTO t SELECT g, 'b' FROM generate_series(101, 200) g`)
	p.Start()
	waitEqual(t, src, dst, "t", "t", "id")
	var beforeExpiry bool
	if err := cat.QueryRow(testCtx(t), `SELECT now() < $1`, killed.expires).Scan(&beforeExpiry); err != nil {
		t.Fatal(err)
	}
	after := leaseOf(t, cat, "one")
	if !beforeExpiry {
		t.Fatalf("the restarted node streamed only after the lease of its last run expired (%s)", killed.expires)
	}
	if after.node != before.node || after.epoch <= before.epoch {
		t.Fatalf("lease after the restart: %+v, want node %s at an epoch above %d", after, before.node, before.epoch)
	}
}

// Two nodes on one catalog: the mirror runs on exactly one; both show
// alive in nodes. Killing the owner moves the stream to the other within
// 30 s, and the destination converges under a write load. PAUSE, RESUME
// and RESYNC TABLE issued on the node that does not run the mirror act
// on the one that does, and VALIDATE MIRROR there runs on it as a job,
// leaving the stream where it is. A node stopped with SIGTERM hands its
// stream over.
func TestTwoNodesFailover(t *testing.T) {
	n := startTwoNodes(t, "two")
	a, b, cat, srcURL, src, dst := n.a, n.b, n.cat, n.srcURL, n.src, n.dst
	b.WaitFor("both nodes alive", func(c *pgx.Conn) bool {
		var alive int
		return c.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'alive') FROM nodes`).Scan(&alive) == nil && alive == 2
	}, nil)
	first, owner, other := n.first, n.owner, n.other
	time.Sleep(time.Second) // a few heartbeats: still one reader, same owner
	if n := walsenders(t, src); n != 1 {
		t.Fatalf("%d active slots on the source, want 1", n)
	}
	if l := leaseOf(t, cat, "two"); l.node != first.node || l.epoch != first.epoch {
		t.Fatalf("the lease moved without a failure: %+v, then %+v", first, l)
	}

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, srcURL, "-n", "-c", "2", "-T", "12")
	}()
	time.Sleep(2 * time.Second)
	owner.Kill()
	killedAt := time.Now()
	var moved lease
	for {
		moved = leaseOf(t, cat, "two")
		if moved.node != "" && moved.node != first.node {
			break
		}
		if time.Since(killedAt) > 30*time.Second {
			t.Fatalf("30 s after the owner was killed, the lease is %+v", moved)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the stream moved %s after the kill (node timeout 5s)", time.Since(killedAt).Round(100*time.Millisecond))
	if nodeOf(t, cat, moved.node, a, b) != other || moved.epoch <= first.epoch {
		t.Fatalf("lease after the failover: %+v, want the other node at an epoch above %d", moved, first.epoch)
	}
	<-load
	waitStreaming(t, other, "two")
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	other.WaitFor("the killed node gone", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM nodes WHERE id = $1`, first.node).Scan(&status) == nil && status == "gone"
	}, nil)

	// The killed node comes back (the same node: its data dir) and does
	// not take the stream back; statements on it act on the owner.
	owner.Start()
	owner.WaitFor("the node alive again", func(c *pgx.Conn) bool {
		var status string
		return c.QueryRow(context.Background(), `SELECT status FROM nodes WHERE id = $1`, first.node).Scan(&status) == nil && status == "alive"
	}, nil)
	if l := leaseOf(t, cat, "two"); l.node != moved.node || l.epoch != moved.epoch {
		t.Fatalf("the restarted node took the stream: %+v, was %+v", l, moved)
	}
	c := connect(t, owner.URL())
	mustExec(t, c, "PAUSE MIRROR two")
	if l := leaseOf(t, cat, "two"); l.node != "" {
		t.Fatalf("after PAUSE MIRROR on the other node, the lease is %+v", l)
	}
	waitForCount := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for walsenders(t, src) != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d active slots on the source, want %d", walsenders(t, src), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitForCount(0)
	mustExec(t, src, "UPDATE pgbench_branches SET bbalance = bbalance + 1")
	mustExec(t, c, "RESUME MIRROR two")
	waitStreaming(t, owner, "two")
	resumed := leaseOf(t, cat, "two")
	if resumed.node != first.node {
		t.Fatalf("after RESUME MIRROR on node %s, the lease is %+v", first.node, resumed)
	}
	waitEqual(t, src, dst, "pgbench_branches", "pgbench_branches", "bid")
	waitForCount(1)

	// RESYNC TABLE on the node that does not run the mirror: the owner's
	// flow is woken and does it.
	oc := connect(t, other.URL())
	mustExec(t, oc, "RESYNC TABLE two.public.pgbench_tellers WITH (strategy = 'truncate')")
	deadline := time.Now().Add(60 * time.Second)
	for {
		var status string
		if err := cat.QueryRow(testCtx(t), `SELECT coalesce(resync_status, '') FROM sluice.mirror_tables
			WHERE mirror = 'two' AND source_table = 'public.pgbench_tellers'`).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if status == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resync of pgbench_tellers from the other node: status %q", status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if l := leaseOf(t, cat, "two"); l.node != resumed.node || l.epoch != resumed.epoch {
		t.Fatalf("RESYNC TABLE moved the stream: %+v, was %+v", l, resumed)
	}
	mustExec(t, src, "UPDATE pgbench_tellers SET tbalance = tbalance + 1 WHERE tid <= 3")
	for _, tbl := range testbed.PgbenchTables {
		waitEqual(t, src, dst, tbl.Name, tbl.Name, tbl.Key)
	}
	// VALIDATE MIRROR on the node that does not run it: a job that runs on
	// the owner, against its running flow; the stream stays where it is.
	for table, r := range testbed.ValidateRows(t, oc, "VALIDATE MIRROR two WITH (mode = checksum)") {
		if r.Status != "equal" {
			t.Errorf("validation from the other node: %s is %s (%d, %d rows)", table, r.Status, r.Source, r.Dest)
		}
	}
	if l := leaseOf(t, cat, "two"); l.node != resumed.node || l.epoch != resumed.epoch {
		t.Fatalf("VALIDATE MIRROR on the other node moved the stream: %+v, was %+v", l, resumed)
	}
	var nodes string
	if err := oc.QueryRow(testCtx(t), `SELECT string_agg(status, ' ' ORDER BY status) FROM nodes`).Scan(&nodes); err != nil || nodes != "alive alive" {
		t.Fatalf("nodes: %q (%v)", nodes, err)
	}

	// SIGTERM of the owner: the node frees its lease and says it stopped;
	// the other takes the stream at once, without waiting for expiry.
	c.Close(context.Background())
	owner.Stop()
	var status string
	if err := cat.QueryRow(testCtx(t), `SELECT status FROM sluice_status.nodes WHERE id = $1`, resumed.node).Scan(&status); err != nil || status != "stopped" {
		t.Fatalf("the node stopped with SIGTERM shows %q (%v)", status, err)
	}
	if l := leaseOf(t, cat, "two"); l.node == resumed.node {
		t.Fatalf("the node stopped with SIGTERM kept its lease: %+v", l)
	}
	waitStreaming(t, other, "two")
	if l := leaseOf(t, cat, "two"); l.node == resumed.node || nodeOf(t, cat, l.node, a, b) != other {
		t.Fatalf("after the owner stopped, the lease is %+v", l)
	}
	mustExec(t, src, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10")
	waitEqual(t, src, dst, "pgbench_accounts", "pgbench_accounts", "aid")
}
