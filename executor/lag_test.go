package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// lagRow is a mirror's lag as sluice_status.mirrors shows it.
type lagRow struct {
	status    string
	lag       *int64
	at        *time.Time
	walStatus *string
	safe      *int64
	errText   string
}

func (r lagRow) String() string {
	s := fmt.Sprintf("status %s, error %q", r.status, r.errText)
	if r.lag != nil {
		s += fmt.Sprintf(", lag %d", *r.lag)
	} else {
		s += ", lag NULL"
	}
	if r.at != nil {
		s += ", measured at " + r.at.Format(time.RFC3339Nano)
	}
	if r.walStatus != nil {
		s += ", wal_status " + *r.walStatus
	}
	return s
}

// readLag reads the mirror's lag columns through sluice, on a fresh
// connection (a test may run while peers come and go).
func readLag(t *testing.T, url, mirror string) lagRow {
	t.Helper()
	conn := connect(t, url)
	defer conn.Close(context.Background())
	var r lagRow
	err := conn.QueryRow(testCtx(t), `SELECT status, lag_bytes, lag_measured_at, slot_wal_status, slot_safe_wal_size,
		coalesce(error, '') FROM mirrors WHERE name = $1`, mirror).Scan(&r.status, &r.lag, &r.at, &r.walStatus, &r.safe, &r.errText)
	if err != nil {
		t.Fatalf("read lag of %s: %v", mirror, err)
	}
	return r
}

// waitLag polls the mirror's lag until cond holds.
func waitLag(t *testing.T, url, mirror, what string, cond func(lagRow) bool) lagRow {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var r lagRow
	for time.Now().Before(deadline) {
		r = readLag(t, url, mirror)
		if cond(r) {
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("mirror %s: waiting for %s: %s", mirror, what, r)
	return r
}

// slotLag measures the slot's lag on the source directly.
func slotLag(t *testing.T, src *pgx.Conn, slot string) int64 {
	t.Helper()
	var lag int64
	err := src.QueryRow(testCtx(t), `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&lag)
	if err != nil {
		t.Fatalf("slot %s: %v", slot, err)
	}
	return lag
}

// startCluster starts a cluster of the test's own, one it may stop and
// start (the shared ones must stay up).
func startCluster(t *testing.T, name string, settings map[string]string) *testbed.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := testbed.StartWith(ctx, name, settings)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// equalSoon waits until table is the same on both sides, on fresh
// connections each time (either peer may have restarted), within bound.
func equalSoon(t *testing.T, srcURL, dstURL, table string, bound time.Duration) {
	t.Helper()
	deadline := time.Now().Add(bound)
	diff := "not compared"
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		src, err1 := pgx.Connect(ctx, srcURL)
		dst, err2 := pgx.Connect(ctx, dstURL)
		if err1 == nil && err2 == nil {
			diff = compareTables(t, src, dst, table, table, "1")
		} else {
			diff = fmt.Sprintf("connect: %v, %v", err1, err2)
		}
		for _, c := range []*pgx.Conn{src, dst} {
			if c != nil {
				c.Close(ctx)
			}
		}
		cancel()
		if diff == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s differs after %s:\n%s", table, bound, diff)
}

// TestMirrorLagWhilePaused: the lag of a paused mirror is the slot's, as
// the source measures it, and it is still shown right after RESUME, before
// the mirror has caught up.
func TestMirrorLagWhilePaused(t *testing.T) {
	f := newMirrorFixture(t)
	url := f.s.URL()
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g`)
	mustExec(t, f.conn, `CREATE MIRROR lagp FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f.waitStatus(t, "lagp", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	waitLag(t, url, "lagp", "a first measurement", func(r lagRow) bool { return r.lag != nil && r.at != nil })

	mustExec(t, f.conn, "PAUSE MIRROR lagp")
	f.waitStatus(t, "lagp", "PAUSED")
	mustExec(t, f.src, `INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(101, 40100) g`)
	written := time.Now()
	before := slotLag(t, f.src, "sluice_lagp")
	if before < 4<<20 {
		t.Fatalf("the writes put the slot only %d bytes behind", before)
	}
	r := waitLag(t, url, "lagp", "a measurement after the writes", func(r lagRow) bool {
		return r.at != nil && r.at.After(written)
	})
	after := slotLag(t, f.src, "sluice_lagp")
	if r.lag == nil || *r.lag < before || *r.lag > after {
		t.Fatalf("paused mirror: %s; the slot was %d bytes behind before the measurement and %d after", r, before, after)
	}
	if r.walStatus == nil || *r.walStatus != "reserved" {
		t.Fatalf("paused mirror: %s, want wal_status reserved", r)
	}

	mustExec(t, f.conn, "RESUME MIRROR lagp")
	if r := readLag(t, url, "lagp"); r.lag == nil || *r.lag == 0 {
		t.Fatalf("right after RESUME, before catching up: %s", r)
	}
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	caught := time.Now()
	waitLag(t, url, "lagp", "a small lag once caught up", func(r lagRow) bool {
		return r.at != nil && r.at.After(caught) && r.lag != nil && *r.lag < 1<<20 && r.status == "RUNNING"
	})
}

// TestMirrorLagSourceDown: while the source cannot be reached the lag is
// unknown (NULL), and lag_measured_at keeps the time of the last
// measurement; once the source is back, measurements resume.
func TestMirrorLagSourceDown(t *testing.T) {
	srcC := startCluster(t, "lagsrc", nil)
	s := startSluice(t, testbed.Options{})
	url := s.URL()
	conn := connect(t, url)
	srcURL, dstURL := srcC.NewDB(t), peerCluster.NewDB(t)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+srcC.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	srcC.Exec(t, testbed.DBName(srcURL), `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`)
	mustExec(t, conn, `CREATE MIRROR lagdown FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f := &mirrorFixture{s: s, conn: conn}
	f.waitStatus(t, "lagdown", "RUNNING")
	equalSoon(t, srcURL, dstURL, "t", time.Minute)
	waitLag(t, url, "lagdown", "a measurement", func(r lagRow) bool { return r.lag != nil && r.at != nil })

	if err := srcC.Cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	down := waitLag(t, url, "lagdown", "lag NULL with the source down", func(r lagRow) bool { return r.lag == nil })
	if down.at == nil || down.at.After(stopped.Add(2*time.Second)) || down.walStatus != nil {
		t.Fatalf("source down: %s; want the time of the last measurement, before %s", down, stopped.Format(time.RFC3339Nano))
	}
	time.Sleep(12 * time.Second) // two rounds of the monitor, at least
	later := readLag(t, url, "lagdown")
	if later.lag != nil || later.at == nil || !later.at.Equal(*down.at) {
		t.Fatalf("source still down: %s, want lag NULL measured at %s", later, down.at.Format(time.RFC3339Nano))
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srcC.Cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	srcC.Exec(t, testbed.DBName(srcURL), `INSERT INTO t VALUES (2, 'b')`)
	equalSoon(t, srcURL, dstURL, "t", time.Minute)
	waitLag(t, url, "lagdown", "a measurement once the source is back", func(r lagRow) bool {
		return r.lag != nil && r.at != nil && r.at.After(back)
	})
}

// TestMirrorResyncLag: through a RESYNC MIRROR the lag stays measured: on
// the old slot while SETUP waits (here for a lock on the source table),
// on the new one from SNAPSHOT on.
func TestMirrorResyncLag(t *testing.T) {
	f := newMirrorFixture(t)
	url := f.s.URL()
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 1000) g`)
	mustExec(t, f.conn, `CREATE MIRROR lagrs FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f.waitStatus(t, "lagrs", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	locker := connect(t, f.srcURL)
	mustExec(t, locker, "BEGIN")
	mustExec(t, locker, "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE")
	mustExec(t, f.conn, "RESYNC MIRROR lagrs")
	started := time.Now()
	r := waitLag(t, url, "lagrs", "a measurement during the resync's setup", func(r lagRow) bool {
		return r.at != nil && r.at.After(started.Add(time.Second))
	})
	if r.status != "SETUP" || r.lag == nil {
		t.Fatalf("resync under way: %s, want SETUP with a lag", r)
	}
	mustExec(t, locker, "COMMIT")
	mustExec(t, f.src, "INSERT INTO t VALUES (5000, 'after')")
	f.waitStatus(t, "lagrs", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
}

// TestMirrorSlotLost: a slot the source invalidated (max_slot_wal_keep_size
// exceeded) fails the mirror with an error that says what happened and
// that RESYNC MIRROR recovers; the mirror stops retrying until then, and
// RESYNC MIRROR recovers it.
func TestMirrorSlotLost(t *testing.T) {
	srcC := startCluster(t, "slotlost", map[string]string{
		"max_slot_wal_keep_size": "1MB", "wal_keep_size": "0", "min_wal_size": "32MB", "max_wal_size": "64MB"})
	s := startSluice(t, testbed.Options{})
	url := s.URL()
	conn := connect(t, url)
	srcURL, dstURL := srcC.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+srcC.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g`)
	mustExec(t, conn, `CREATE MIRROR lost1 FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f := &mirrorFixture{s: s, conn: conn}
	f.waitStatus(t, "lost1", "RUNNING")
	waitEqual(t, src, dst, "t", "t", "id")

	mustExec(t, conn, "PAUSE MIRROR lost1")
	f.waitStatus(t, "lost1", "PAUSED")
	ctx := testCtx(t)
	var walStatus string
	for i := 0; i < 30 && walStatus != "lost"; i++ {
		mustExec(t, src, `INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1000 + $1::int * 20000, 1000 + $1::int * 20000 + 19999) g`, i)
		mustExec(t, src, "SELECT pg_switch_wal()")
		mustExec(t, src, "CHECKPOINT")
		if err := src.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'sluice_lost1'").Scan(&walStatus); err != nil {
			t.Fatal(err)
		}
	}
	if walStatus != "lost" {
		t.Fatalf("the slot's wal_status is %s, want lost", walStatus)
	}
	waitLag(t, url, "lost1", "wal_status lost", func(r lagRow) bool { return r.walStatus != nil && *r.walStatus == "lost" })

	mustExec(t, conn, "RESUME MIRROR lost1")
	f.waitStatus(t, "lost1", "FAILED")
	r := readLag(t, url, "lost1")
	for _, want := range []string{`"sluice_lost1"`, "removed WAL", "RESYNC MIRROR lost1"} {
		if !strings.Contains(r.errText, want) {
			t.Fatalf("error %q does not say %q", r.errText, want)
		}
	}
	// No retries: the mirror waits for the user.
	var events int
	count := func() (int, int) {
		var n, c int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM mirror_events WHERE mirror = 'lost1'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := src.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sluice-cdc'").Scan(&c); err != nil {
			t.Fatal(err)
		}
		return n, c
	}
	events, _ = count()
	for i := 0; i < 24; i++ { // 12 s: more than the longest retry delay and two monitor rounds
		time.Sleep(500 * time.Millisecond)
		n, c := count()
		if n != events || c != 0 {
			t.Fatalf("the mirror keeps trying: %d events (had %d), %d CDC connections on the source", n, events, c)
		}
	}
	if r2 := readLag(t, url, "lost1"); r2.errText != r.errText || r2.status != "FAILED" {
		t.Fatalf("after waiting: %s, want the same error", r2)
	}
	var recovered int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM mirror_events WHERE mirror = 'lost1' AND kind = 'recovered'").Scan(&recovered); err != nil || recovered != 0 {
		t.Fatalf("%d recovered events (%v) while nothing recovered", recovered, err)
	}

	mustExec(t, conn, "RESYNC MIRROR lost1")
	f.waitStatus(t, "lost1", "RUNNING")
	mustExec(t, src, "INSERT INTO t VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET v = 'after resync'")
	waitEqual(t, src, dst, "t", "t", "id")
	waitLag(t, url, "lost1", "a healthy slot", func(r lagRow) bool {
		return r.walStatus != nil && *r.walStatus != "lost" && r.lag != nil && r.errText == ""
	})
}

// TestMirrorSlotLostWhileFailing: the slot of a mirror that is retrying
// for another reason (its destination is down) is invalidated; the monitor
// notices, the mirror shows the lost slot, and the errors of the
// destination outage do not replace that message, nor does the
// destination coming back make it recover: only RESYNC MIRROR does.
func TestMirrorSlotLostWhileFailing(t *testing.T) {
	srcC := startCluster(t, "slotlost2", map[string]string{
		"max_slot_wal_keep_size": "1MB", "wal_keep_size": "0", "min_wal_size": "32MB", "max_wal_size": "64MB"})
	dstC := startCluster(t, "slotlost2dst", nil)
	s := startSluice(t, testbed.Options{})
	url := s.URL()
	conn := connect(t, url)
	srcURL, dstURL := srcC.NewDB(t), dstC.NewDB(t)
	src := connect(t, srcURL)
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+srcC.PeerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+dstC.PeerOptions(dstURL)+")")
	mustExec(t, src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g`)
	mustExec(t, conn, `CREATE MIRROR lost2 FROM src TO dst WITH TABLE MAPPING (t:t)`)
	f := &mirrorFixture{s: s, conn: conn}
	f.waitStatus(t, "lost2", "RUNNING")
	equalSoon(t, srcURL, dstURL, "t", time.Minute)

	if err := dstC.Cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, src, "INSERT INTO t VALUES (101, 'destination down')")
	f.waitStatus(t, "lost2", "FAILED")
	ctx := testCtx(t)
	var walStatus string
	for i := 0; i < 30 && walStatus != "lost"; i++ {
		mustExec(t, src, `INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1000 + $1::int * 20000, 1000 + $1::int * 20000 + 19999) g`, i)
		mustExec(t, src, "SELECT pg_switch_wal()")
		mustExec(t, src, "CHECKPOINT")
		if err := src.QueryRow(ctx, "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'sluice_lost2'").Scan(&walStatus); err != nil {
			t.Fatal(err)
		}
	}
	if walStatus != "lost" {
		t.Fatalf("the slot's wal_status is %s, want lost", walStatus)
	}
	lost := waitLag(t, url, "lost2", "the lost slot's error", func(r lagRow) bool {
		return strings.Contains(r.errText, "removed WAL") && strings.Contains(r.errText, "RESYNC MIRROR lost2")
	})
	if lost.status != "FAILED" || lost.walStatus == nil || *lost.walStatus != "lost" {
		t.Fatalf("lost slot: %s", lost)
	}
	ctx2, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dstC.Cluster.Start(ctx2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(12 * time.Second) // longer than the longest retry delay
	if r := readLag(t, url, "lost2"); r.errText != lost.errText || r.status != "FAILED" {
		t.Fatalf("destination back: %s; want the lost slot's error to stay", r)
	}
	var recovered int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM mirror_events WHERE mirror = 'lost2' AND kind = 'recovered'").Scan(&recovered); err != nil || recovered != 0 {
		t.Fatalf("%d recovered events (%v) while nothing recovered", recovered, err)
	}

	mustExec(t, conn, "RESYNC MIRROR lost2")
	f.waitStatus(t, "lost2", "RUNNING")
	mustExec(t, src, "INSERT INTO t VALUES (102, 'after resync')")
	equalSoon(t, srcURL, dstURL, "t", time.Minute)
}
