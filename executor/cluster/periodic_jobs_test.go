package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// The periodic samplers as River periodic jobs
// (docs/cluster.md#where-periodic-work-runs), with two nodes on one
// catalog: one lag_sample and one slot_monitor job a period, whichever
// node runs it, shown in the jobs status table; the samples go on after
// the node that enqueued them (River's leader) is killed, and their rate
// is computed across nodes.

// periodicSample is one row of mirror_lag_history.
type periodicSample struct {
	at   time.Time
	rate *float64
}

// TestPeriodicJobsTwoNodes: see the file's comment.
func TestPeriodicJobsTwoNodes(t *testing.T) {
	catURL := catalogCluster.NewDB(t)
	args := []string{"--node-timeout", "5s", "--lag-history-interval", "1s"}
	a := testbed.StartSluiceProcess(t, catURL, testbed.Password, args...)
	b := testbed.StartSluiceProcess(t, catURL, testbed.Password, args...)
	s := nodeSet{t: t, cat: connect(t, catURL), procs: []*testbed.SluiceProcess{a, b}}
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src := connect(t, srcURL)
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 100) g`)
	conn := connect(t, a.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerCluster.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerCluster.PeerOptions(dstURL)+")")
	mustExec(t, conn, "CREATE MIRROR h FROM src TO dst WITH TABLE MAPPING (t:t)")
	conn.Close(context.Background())
	ids := []string{s.id(a), s.id(b)}
	s.waitSpread("the mirror running", []string{"h"}, ids, 0, 1, 2*time.Minute)

	samples := func(after time.Time) []periodicSample {
		t.Helper()
		rows, err := s.cat.Query(testCtx(t), `SELECT at, rows_per_second FROM sluice.mirror_lag_history
WHERE mirror = 'h' AND at > $1 ORDER BY at`, after)
		if err != nil {
			t.Fatal(err)
		}
		var out []periodicSample
		var x periodicSample
		if _, err := pgx.ForEachRow(rows, []any{&x.at, &x.rate}, func() error { out = append(out, x); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// spacing fails the test when two samples are closer than half a
	// period: two jobs of one period.
	spacing := func(ss []periodicSample) {
		t.Helper()
		for i := 1; i < len(ss); i++ {
			if d := ss[i].at.Sub(ss[i-1].at); d < 500*time.Millisecond {
				t.Fatalf("samples %s apart at %s: two samples in one period", d, ss[i].at.Format("15:04:05.000"))
			}
		}
	}
	// unique fails the test when a kind has two jobs of one period.
	unique := func() {
		t.Helper()
		var dups int
		if err := s.cat.QueryRow(testCtx(t), `SELECT count(*) FROM (SELECT kind, args->>'at' FROM sluice.river_job
WHERE kind IN ('lag_sample', 'slot_monitor') GROUP BY 1, 2 HAVING count(*) > 1) d`).Scan(&dups); err != nil || dups != 0 {
			t.Fatalf("%d periods with more than one job of a kind (%v)", dups, err)
		}
	}
	stop, written := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(written)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := src.Exec(context.Background(), `UPDATE t SET v = v + 1 WHERE id <= 10`); err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-written // before the connection closes
	}()

	from := time.Now()
	time.Sleep(8 * time.Second)
	before := samples(from)
	if len(before) < 6 || len(before) > 9 {
		t.Fatalf("%d samples in 8 s at one a second, want about 8", len(before))
	}
	spacing(before)
	unique()
	// The jobs status table shows the periodic jobs, the node that ran
	// each, and no mirror: they measure them all.
	var kinds, slotMonitors int
	if err := s.cat.QueryRow(testCtx(t), `SELECT count(DISTINCT kind), count(*) FILTER (WHERE kind = 'slot_monitor')
FROM sluice_status.jobs WHERE kind IN ('lag_sample', 'slot_monitor') AND state = 'completed' AND node IS NOT NULL
  AND mirror IS NULL AND finished_at > $1`, from).Scan(&kinds, &slotMonitors); err != nil {
		t.Fatal(err)
	}
	if kinds != 2 || slotMonitors < 1 || slotMonitors > 3 {
		t.Fatalf("jobs shows %d periodic kinds and %d slot_monitor jobs in 8 s, want 2 and about 2", kinds, slotMonitors)
	}
	var active *bool
	if err := s.cat.QueryRow(testCtx(t), `SELECT slot_active FROM sluice_status.mirrors WHERE name = 'h'`).Scan(&active); err != nil ||
		active == nil || !*active {
		t.Fatalf("mirrors.slot_active of a streaming mirror is %v (%v), want true", active, err)
	}

	// Kill River's leader, which enqueues the periodic jobs: another is
	// elected and the samples go on.
	var leader string
	if err := s.cat.QueryRow(testCtx(t), `SELECT leader_id FROM sluice.river_leader`).Scan(&leader); err != nil {
		t.Fatal(err)
	}
	victim := nodeOf(t, s.cat, leader, a, b)
	victim.Kill()
	killedAt := time.Now()
	var after []periodicSample
	for len(after) < 5 {
		if time.Since(killedAt) > time.Minute {
			t.Fatalf("%d samples in the minute after River's leader %s was killed", len(after), leader)
		}
		time.Sleep(500 * time.Millisecond)
		after = samples(killedAt)
	}
	all := append(before, after...)
	spacing(all)
	unique()
	for _, x := range all[1:] {
		if x.rate == nil {
			t.Errorf("the sample at %s has no rate", x.at.Format("15:04:05.000"))
		}
	}
	var nodes int
	if err := s.cat.QueryRow(testCtx(t), `SELECT count(DISTINCT node) FROM sluice_status.jobs
WHERE kind = 'lag_sample' AND state = 'completed' AND finished_at > $1`, from).Scan(&nodes); err != nil {
		t.Fatal(err)
	}
	if nodes != 2 {
		t.Errorf("the samples were taken by %d nodes, want both (rates computed across nodes)", nodes)
	}
	t.Logf("%d samples before the kill, %d after; the first after it at %s (%s after the kill)", len(before), len(after),
		after[0].at.Format("15:04:05.000"), after[0].at.Sub(killedAt).Round(100*time.Millisecond))
}
