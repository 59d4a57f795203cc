package executor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// TestMirrorDestinationOutages: outage after outage of the destination,
// the mirror resumes streaming within seconds of the destination answering
// again (the retry delay starts over once streaming made progress and is
// capped); while the destination is down the mirror is FAILED and its lag
// is measured on the source, growing with the source's writes.
func TestMirrorDestinationOutages(t *testing.T) {
	dstC := startCluster(t, "outage", nil)
	s := startSluice(t, testbed.Options{})
	url := s.URL()
	conn := connect(t, url)
	srcURL, dstURL := peerCluster.NewDB(t), dstC.NewDB(t)
	src := connect(t, srcURL)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+dstC.PeerOptions(dstURL)+")")
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (0, 'start')`)
	mustExec(t, conn, `CREATE MIRROR outage FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f := &mirrorFixture{s: s, conn: conn}
	f.waitStatus(t, "outage", "RUNNING")
	equalSoon(t, srcURL, dstURL, "t", time.Minute)

	const outages = 5
	for i := 1; i <= outages; i++ {
		if err := dstC.Cluster.Stop(); err != nil {
			t.Fatal(err)
		}
		mustExec(t, src, "INSERT INTO t VALUES ($1, 'during outage')", i*1000)
		f.waitStatus(t, "outage", "FAILED")
		failed := time.Now()
		if i == 1 {
			first := waitLag(t, url, "outage", "a measurement while the destination is down", func(r lagRow) bool {
				return r.at != nil && r.at.After(failed) && r.lag != nil && *r.lag > 0
			})
			mustExec(t, src, "INSERT INTO t SELECT g, repeat('y', 200) FROM generate_series(100001, 105000) g")
			wrote := time.Now()
			grown := waitLag(t, url, "outage", "a larger lag after more writes", func(r lagRow) bool {
				return r.at != nil && r.at.After(wrote) && r.lag != nil
			})
			if *grown.lag <= *first.lag || grown.status != "FAILED" {
				t.Fatalf("destination down: lag went from %s to %s", first, grown)
			}
		} else {
			// Long enough for several retries: the delay grows.
			time.Sleep(9 * time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := dstC.Cluster.Start(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		mustExec(t, src, "INSERT INTO t VALUES ($1, 'after outage')", i*1000+999)
		// Generous: the retry delay is at most 10 s, plus reconnecting.
		equalSoon(t, srcURL, dstURL, "t", 25*time.Second)
		f.waitStatus(t, "outage", "RUNNING")
		t.Logf("outage %d: streaming again %s after the destination was back", i, time.Since(back).Round(100*time.Millisecond))
	}
}

// TestMirrorNoRecoveredWithoutProgress: a step that fails again and again
// after the stream started gets no "recovered" event between its
// failures, and its error stays in mirrors.error; once the cause is gone
// the mirror recovers, with one "recovered" event. The failure is the
// whole mirror's: the destination database turned read-only (a constraint
// a row breaks would now fail that table alone, table_hold_test.go).
func TestMirrorNoRecoveredWithoutProgress(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 1)`)
	mustExec(t, f.conn, `CREATE MIRROR norec FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f.waitStatus(t, "norec", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	var dstDB string
	if err := f.dst.QueryRow(ctx, "SELECT current_database()").Scan(&dstDB); err != nil {
		t.Fatal(err)
	}
	// New sessions of the destination database are read-only; the flow's
	// retries connect anew.
	mustExec(t, f.dst, `ALTER DATABASE `+pgx.Identifier{dstDB}.Sanitize()+` SET default_transaction_read_only = on`)
	mustExec(t, f.dst, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	mustExec(t, f.src, `INSERT INTO t VALUES (2, 500)`)
	f.waitStatus(t, "norec", "FAILED")
	time.Sleep(8 * time.Second) // several retries: 1 s, 2 s, 4 s
	var errors, recovered int
	var errText string
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE kind = 'error'), count(*) FILTER (WHERE kind = 'recovered')
		FROM mirror_events WHERE mirror = 'norec'`).Scan(&errors, &recovered); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.QueryRow(ctx, `SELECT coalesce(error, '') FROM mirrors WHERE name = 'norec'`).Scan(&errText); err != nil {
		t.Fatal(err)
	}
	if errors < 2 || recovered != 0 || !strings.Contains(errText, "read-only") {
		t.Fatalf("after retries: %d error events, %d recovered events, error %q", errors, recovered, errText)
	}
	mustExec(t, f.dst, `ALTER DATABASE `+pgx.Identifier{dstDB}.Sanitize()+` RESET default_transaction_read_only`)
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	f.waitStatus(t, "norec", "RUNNING")
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'norec' AND kind = 'recovered'`).
		Scan(&recovered); err != nil || recovered != 1 {
		t.Fatalf("after recovering: %d recovered events (%v), want 1", recovered, err)
	}
}

// TestMirrorCatalogOutage: a status and a lag left over from before a
// catalog outage are corrected once the catalog is back. The destination
// fails (FAILED is recorded), then the catalog goes away, the destination
// comes back and the source moves on; with the catalog back, the mirror
// streams again, shows RUNNING, and its lag is measured afresh.
func TestMirrorCatalogOutage(t *testing.T) {
	catC := startCluster(t, "outagecat", nil)
	dstC := startCluster(t, "outagecatdst", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := testbed.StartSluice(ctx, catC, testbed.Options{Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	url := s.URL()
	conn := connect(t, url)
	srcURL, dstURL := peerCluster.NewDB(t), dstC.NewDB(t)
	src := connect(t, srcURL)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+dstC.PeerOptions(dstURL)+")")
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (0, 'start')`)
	mustExec(t, conn, `CREATE MIRROR catout FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f := &mirrorFixture{s: s, conn: conn}
	f.waitStatus(t, "catout", "RUNNING")
	equalSoon(t, srcURL, dstURL, "t", time.Minute)

	if err := dstC.Cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, "INSERT INTO t VALUES (1, 'destination down')")
	f.waitStatus(t, "catout", "FAILED")
	conn.Close(context.Background())
	if err := catC.Cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := dstC.Cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, "INSERT INTO t SELECT g, repeat('z', 200) FROM generate_series(2, 20001) g")
	time.Sleep(3 * time.Second)
	if err := catC.Cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	equalSoon(t, srcURL, dstURL, "t", time.Minute)
	r := waitLag(t, url, "catout", "RUNNING with a fresh measurement", func(r lagRow) bool {
		return r.status == "RUNNING" && r.at != nil && r.at.After(back) && r.lag != nil
	})
	if r.errText != "" {
		t.Fatalf("after the catalog outage: %s", r)
	}
}
