package executor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// End-to-end tests of per-table fault isolation and PAUSE/RESUME MIRROR m
// TABLE t (executor/replication/held.go) on Postgres peers, under a write
// load on the source.

// tableLoad inserts into tables a and b of the source (and updates a
// counter row of each) until stopped; stop returns once it has.
type tableLoad struct {
	once sync.Once
	stop chan struct{}
	done chan struct{}
	n    atomic.Int64
}

func startTableLoad(t *testing.T, url string) *tableLoad {
	t.Helper()
	conn := connect(t, url)
	l := &tableLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 1000; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			_, err := conn.Exec(context.Background(), fmt.Sprintf(`BEGIN;
				INSERT INTO a VALUES (%d, 'a%d'); INSERT INTO b VALUES (%d, 'b%d');
				UPDATE a SET v = 'counter %d' WHERE id = 0; UPDATE b SET v = 'counter %d' WHERE id = 0; COMMIT`, i, i, i, i, i, i))
			if err != nil {
				t.Errorf("write load: %v", err)
				return
			}
			l.n.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(l.finish) // before the connection closes
	return l
}

func (l *tableLoad) finish() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
}

// setupHold makes tables a and b on the source, a mirror h of both, and
// waits until it streams.
func setupHold(t *testing.T, f *mirrorFixture) {
	t.Helper()
	mustExec(t, f.src, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, 'a' || g FROM generate_series(0, 500) g; INSERT INTO b SELECT g, 'b' || g FROM generate_series(0, 500) g`)
	mustExec(t, f.conn, "CREATE MIRROR h FROM src TO dst WITH TABLE MAPPING (a:a, b:b) WITH (sync_interval = 1)")
	f.waitStatus(t, "h", "RUNNING")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
}

// waitTable waits until the table's status is want, and returns its error.
func (f *mirrorFixture) waitTable(t *testing.T, mirror, table, want string) string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var status, errText string
	for time.Now().Before(deadline) {
		err := f.conn.QueryRow(testCtx(t), `SELECT status, coalesce(error, '') FROM mirror_tables WHERE mirror = $1 AND source_table = $2`,
			mirror, table).Scan(&status, &errText)
		if err == nil && status == want {
			return errText
		}
		time.Sleep(100 * time.Millisecond)
	}
	var mirrorErr string
	_ = f.conn.QueryRow(testCtx(t), `SELECT coalesce(error, '') FROM mirrors WHERE name = $1`, mirror).Scan(&mirrorErr)
	var events []string
	if rows, err := f.conn.Query(testCtx(t), `SELECT kind || ': ' || message FROM mirror_events WHERE mirror = $1 ORDER BY at DESC LIMIT 8`, mirror); err == nil {
		events, _ = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	t.Fatalf("table %s of mirror %s: status %q (error %q), want %s; mirror error %q; last events %q",
		table, mirror, status, errText, want, mirrorErr, events)
	return ""
}

// waitGrows waits until the destination table has more rows than it had.
func waitGrows(t *testing.T, dst *pgx.Conn, table string) {
	t.Helper()
	count := func() int64 {
		var n int64
		if err := dst.QueryRow(testCtx(t), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	deadline := time.Now().Add(30 * time.Second)
	for count() <= before {
		if time.Now().After(deadline) {
			t.Fatalf("%s stopped receiving rows (%d)", table, before)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTableFailsAlone breaks one destination table at a time under a write
// load on both (dropped, a constraint its rows violate, a type its values
// no longer fit): that table goes failed with the reason, the other keeps
// streaming and the mirror runs; RESYNC TABLE (dropped) or RESUME TABLE
// (the cause fixed) brings it back, and both tables end equal to the
// source.
func TestTableFailsAlone(t *testing.T) {
	f := newMirrorFixture(t)
	setupHold(t, f)
	load := startTableLoad(t, f.srcURL)

	// A destination table dropped by hand: that table fails, the other
	// keeps streaming, the mirror runs.
	mustExec(t, f.dst, "DROP TABLE a")
	reason := f.waitTable(t, "h", "public.a", "failed")
	if !strings.Contains(reason, "public.a") || !strings.Contains(reason, "does not exist") {
		t.Errorf("reason %q: want it to name the table and the cause", reason)
	}
	waitGrows(t, f.dst, "b")
	f.waitStatus(t, "h", "RUNNING")
	var step string
	if err := f.conn.QueryRow(testCtx(t), `SELECT step FROM mirror_tables WHERE source_table = 'public.a'`).Scan(&step); err != nil || step != "held" {
		t.Errorf("step %q (%v), want held", step, err)
	}

	// RESYNC TABLE heals it: the table is created again and copied.
	mustExec(t, f.conn, "RESYNC TABLE h.public.a")
	f.waitResync(t, "h", "public.a", "done")
	waitGrows(t, f.dst, "a")

	// A constraint added on the destination that rows violate: the table
	// fails; with the constraint gone, RESUME brings every change since.
	mustExec(t, f.dst, "ALTER TABLE b ADD CONSTRAINT no_bad CHECK (v <> 'bad')")
	mustExec(t, f.src, "INSERT INTO b VALUES (-1, 'bad')")
	reason = f.waitTable(t, "h", "public.b", "failed")
	if !strings.Contains(reason, "public.b") || !strings.Contains(reason, "no_bad") {
		t.Errorf("reason %q: want it to name the table and the constraint", reason)
	}
	waitGrows(t, f.dst, "a")
	mustExec(t, f.dst, "ALTER TABLE b DROP CONSTRAINT no_bad")
	mustExec(t, f.conn, "RESUME MIRROR h TABLE public.b")
	f.waitTable(t, "h", "public.b", "running")
	waitGrows(t, f.dst, "b")

	// A type changed on the destination that a value no longer fits: the
	// table fails alone; with the type back, RESUME brings every change
	// since.
	mustExec(t, f.dst, "ALTER TABLE a ALTER COLUMN id TYPE smallint")
	mustExec(t, f.src, "INSERT INTO a VALUES (40000, 'too big for smallint')")
	reason = f.waitTable(t, "h", "public.a", "failed")
	if !strings.Contains(reason, "public.a") || !strings.Contains(reason, "22003") {
		t.Errorf("reason %q: want it to name the table and the cause", reason)
	}
	waitGrows(t, f.dst, "b")
	mustExec(t, f.dst, "ALTER TABLE a ALTER COLUMN id TYPE int")
	mustExec(t, f.conn, "RESUME MIRROR h TABLE a")
	f.waitTable(t, "h", "public.a", "running")
	waitGrows(t, f.dst, "a")
	load.finish()
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	waitEqual(t, f.src, f.dst, "b", "b", "id")
	if load.n.Load() < 10 {
		t.Fatalf("the load wrote %d transactions", load.n.Load())
	}
}

// TestPauseTable pauses one table under a write load: its rows stop, the
// other's go on, the slot keeps the WAL; resumed, it ends equal to the
// source.
func TestPauseTable(t *testing.T) {
	f := newMirrorFixture(t)
	setupHold(t, f)
	ctx := testCtx(t)
	load := startTableLoad(t, f.srcURL)

	mustExec(t, f.conn, "PAUSE MIRROR h TABLE public.a")
	f.waitTable(t, "h", "public.a", "paused")
	var before int64
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM a").Scan(&before); err != nil {
		t.Fatal(err)
	}
	waitGrows(t, f.dst, "b")
	waitGrows(t, f.dst, "b")
	var after int64
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM a").Scan(&after); err != nil || after != before {
		t.Fatalf("a paused went from %d to %d rows (%v)", before, after, err)
	}
	// The slot keeps what the paused table needs: it does not pass the
	// position the table stopped at while b's changes go on.
	var lag int64
	if err := f.src.QueryRow(ctx, `SELECT pg_current_wal_lsn() - confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_h'`).
		Scan(&lag); err != nil || lag <= 0 {
		t.Fatalf("slot lag %d (%v): want the WAL held", lag, err)
	}

	mustExec(t, f.conn, "RESUME MIRROR h TABLE public.a")
	f.waitTable(t, "h", "public.a", "running")
	waitGrows(t, f.dst, "a")
	load.finish()
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	waitEqual(t, f.src, f.dst, "b", "b", "id")
}

// TestTableHoldStatements checks the statements' errors and notices on a
// streaming mirror (regress/sql/table_hold.sql has the messages).
func TestTableHoldStatements(t *testing.T) {
	f := newMirrorFixture(t)
	setupHold(t, f)
	for _, c := range []struct{ sql, code string }{
		{"PAUSE MIRROR h TABLE public.nope", "42P01"},
		{"RESUME MIRROR h TABLE nope", "42P01"},
		{"PAUSE MIRROR nope TABLE public.a", "42704"},
		{"RESUME MIRROR nope TABLE a", "42704"},
	} {
		_, err := f.conn.Exec(testCtx(t), c.sql)
		wantError(t, err, c.code)
	}
	mustExec(t, f.conn, "PAUSE MIRROR IF EXISTS nope TABLE a")
	mustExec(t, f.conn, "RESUME MIRROR h TABLE a") // not paused: a notice
	mustExec(t, f.conn, "PAUSE MIRROR h TABLE a")
	f.waitTable(t, "h", "public.a", "paused")
	mustExec(t, f.conn, "PAUSE MIRROR h TABLE a") // already: a notice
	mustExec(t, f.conn, "RESUME MIRROR h TABLE a")
	f.waitTable(t, "h", "public.a", "running")
	mustExec(t, f.src, "INSERT INTO a VALUES (9999, 'after')")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
}

// TestKillWhileTableHeld kills sluice (SIGKILL) while a table is paused
// and writes go on: after the restart the table is still held and the
// other streams; resumed, it gets every change, none twice.
func TestKillWhileTableHeld(t *testing.T) {
	p := startProcess(t)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	mustExec(t, src, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, 'a' || g FROM generate_series(0, 500) g; INSERT INTO b SELECT g, 'b' || g FROM generate_series(0, 500) g`)
	mustExec(t, conn, "CREATE MIRROR h FROM src TO dst WITH TABLE MAPPING (a:a, b:b) WITH (sync_interval = 1)")
	conn.Close(context.Background())
	tableStatus := func(want string) func(c *pgx.Conn) bool {
		return func(c *pgx.Conn) bool {
			var status string
			err := c.QueryRow(context.Background(), `SELECT status FROM mirror_tables WHERE mirror = 'h' AND source_table = 'public.a'`).Scan(&status)
			return err == nil && status == want
		}
	}
	waitFor(t, p, "streaming", tableStatus("running"))
	waitEqual(t, src, dst, "a", "a", "id")
	conn = connect(t, p.URL())
	mustExec(t, conn, "PAUSE MIRROR h TABLE a")
	conn.Close(context.Background())
	waitFor(t, p, "a paused", tableStatus("paused"))

	load := startTableLoad(t, srcURL)
	waitGrows(t, dst, "b")
	p.Kill()
	p.Start()
	waitGrows(t, dst, "b")
	waitFor(t, p, "a still paused", tableStatus("paused"))
	var missing int64
	if err := dst.QueryRow(testCtx(t), "SELECT count(*) FROM a WHERE id >= 1000").Scan(&missing); err != nil || missing != 0 {
		t.Fatalf("%d rows of the paused table arrived (%v)", missing, err)
	}
	p.Kill()
	p.Start()
	conn = connect(t, p.URL())
	mustExec(t, conn, "RESUME MIRROR h TABLE a")
	conn.Close(context.Background())
	waitFor(t, p, "a running", tableStatus("running"))
	load.finish()
	waitEqual(t, src, dst, "a", "a", "id")
	waitEqual(t, src, dst, "b", "b", "id")
}
