package executor_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// waitResync waits until the table's resync_status is want.
func (f *mirrorFixture) waitResync(t *testing.T, mirror, table, want string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var status, errText, mstatus string
	for time.Now().Before(deadline) {
		err := f.conn.QueryRow(testCtx(t), `SELECT coalesce(t.resync_status, ''), coalesce(t.resync_error, ''), m.status
			FROM mirror_tables t JOIN mirrors m ON m.name = t.mirror
			WHERE t.mirror = $1 AND t.source_table = $2`, mirror, table).Scan(&status, &errText, &mstatus)
		if err == nil && status == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("resync of %s: status %q (error %q, mirror %s), want %s", table, status, errText, mstatus, want)
}

// reader polls count(*) of a destination table until stopped and records
// what a reader would see go wrong: an error, an empty table, and the
// longest a query took.
type reader struct {
	errs    atomic.Int64
	empties atomic.Int64
	queries atomic.Int64
	mu      sync.Mutex
	lastErr error
	longest time.Duration
	stop    chan struct{}
	done    chan struct{}
}

func startReader(t *testing.T, url, table string) *reader {
	r := &reader{stop: make(chan struct{}), done: make(chan struct{})}
	conn := connect(t, url)
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stop:
				return
			default:
			}
			began := time.Now()
			var n int64
			err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n)
			took := time.Since(began)
			r.queries.Add(1)
			r.mu.Lock()
			r.longest = max(r.longest, took)
			if err != nil {
				r.lastErr = err
			}
			r.mu.Unlock()
			if err != nil {
				r.errs.Add(1)
			} else if n == 0 {
				r.empties.Add(1)
			}
		}
	}()
	return r
}

func (r *reader) finish() {
	close(r.stop)
	<-r.done
}

// TestResyncTable resyncs, under a pgbench workload, a table referenced by
// foreign keys with each strategy, and the large table with swap while a
// reader polls it: each converges, the reader never sees an error or an
// empty table, and the foreign keys still reference the table.
func TestResyncTable(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	pgbench(t, f.srcURL, "-i", "-s", "2", "-q", "--foreign-keys")
	mustExec(t, f.conn, `CREATE MIRROR rt FROM src TO dst WITH TABLE MAPPING (`+pgbenchMapping+`)
		WITH (replicate_foreign_keys = true, snapshot_num_rows_per_partition = 40000)`)
	f.waitStatus(t, "rt", "RUNNING")
	for _, tbl := range pgbenchTables {
		waitEqual(t, f.src, f.dst, tbl.Name, tbl.Name, tbl.Key)
	}
	fkOnto := func(table string) int {
		var n int
		if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND confrelid = $1::regclass`,
			table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := fkOnto("pgbench_branches"); n != 2 {
		t.Fatalf("%d foreign keys reference pgbench_branches on the destination, want 2", n)
	}

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, f.srcURL, "-n", "-c", "3", "-T", "20")
	}()
	for _, strategy := range []string{"truncate", "swap"} {
		mustExec(t, f.conn, "RESYNC TABLE rt.public.pgbench_branches WITH (strategy = '"+strategy+"')")
		f.waitResync(t, "rt", "public.pgbench_branches", "done")
		if n := fkOnto("pgbench_branches"); n != 2 {
			t.Fatalf("after a %s resync, %d foreign keys reference pgbench_branches, want 2", strategy, n)
		}
	}
	r := startReader(t, f.dstURL, "pgbench_accounts")
	mustExec(t, f.conn, "RESYNC TABLE rt.public.pgbench_accounts WITH (strategy = 'swap')")
	f.waitResync(t, "rt", "public.pgbench_accounts", "done")
	r.finish()
	<-load
	for _, tbl := range pgbenchTables {
		waitEqual(t, f.src, f.dst, tbl.Name, tbl.Name, tbl.Key)
	}
	if r.errs.Load() > 0 || r.empties.Load() > 0 {
		t.Fatalf("a reader of the swapped table saw %d errors (last: %v) and %d empty results in %d queries",
			r.errs.Load(), r.lastErr, r.empties.Load(), r.queries.Load())
	}
	t.Logf("reader: %d queries, longest %s", r.queries.Load(), r.longest)
	var shadows int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename LIKE '%\_resync'`).Scan(&shadows); err != nil || shadows != 0 {
		t.Fatalf("%d _resync tables left behind (%v)", shadows, err)
	}
	waitStatistics(t, f.dst, "pgbench_accounts")
	var copied, estimated int64
	if err := f.conn.QueryRow(ctx, `SELECT rows_copied, rows_estimated FROM mirror_tables
		WHERE mirror = 'rt' AND source_table = 'public.pgbench_accounts'`).Scan(&copied, &estimated); err != nil || copied != 200000 {
		t.Fatalf("rows_copied = %d (estimated %d), want 200000 (%v)", copied, estimated, err)
	}
}

// TestResyncTableKeepsStreaming holds a truncate resync of one table
// before its copy (a lock on the destination table) and checks that
// another table's changes still arrive, then that the held table gets
// every change made meanwhile.
func TestResyncTableKeepsStreaming(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE big (id int PRIMARY KEY, v text); CREATE TABLE side (id int PRIMARY KEY, v text);
		INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	mustExec(t, f.conn, "CREATE MIRROR ks FROM src TO dst WITH TABLE MAPPING (big:big, side:side)")
	f.waitStatus(t, "ks", "RUNNING")
	waitEqual(t, f.src, f.dst, "big", "big", "id")

	lock, err := f.dst.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, "LOCK TABLE big IN ACCESS SHARE MODE"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.conn, "RESYNC TABLE ks.big WITH (strategy = 'truncate')")
	f.waitResync(t, "ks", "public.big", "in_progress")
	// The copy waits for the lock; the other table streams meanwhile, and
	// the held table changes on the source.
	mustExec(t, f.src, `INSERT INTO side VALUES (1, 'during'); UPDATE big SET v = 'changed during' WHERE id % 1000 = 0;
		DELETE FROM big WHERE id > 19990; INSERT INTO big VALUES (30000, 'new during')`)
	waitEqual(t, f.src, f.dst, "side", "side", "id")
	var status string
	if err := f.conn.QueryRow(ctx, `SELECT resync_status FROM mirror_tables WHERE source_table = 'public.big'`).Scan(&status); err != nil || status != "in_progress" {
		t.Fatalf("resync status %q (%v) while its copy is blocked", status, err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitResync(t, "ks", "public.big", "done")
	mustExec(t, f.src, `UPDATE big SET v = 'after' WHERE id = 1; INSERT INTO side VALUES (2, 'after')`)
	waitEqual(t, f.src, f.dst, "big", "big", "id")
	waitEqual(t, f.src, f.dst, "side", "side", "id")
	// The slot's position was held back while copying, and moves again.
	var lsn string
	if err := f.src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var passed bool
		if err := f.src.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_ks'`,
			lsn).Scan(&passed); err != nil {
			t.Fatal(err)
		}
		if passed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot did not advance after the resync")
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func TestResyncErrors(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g;
		CREATE TABLE other (id int PRIMARY KEY)`)
	mustExec(t, f.conn, "CREATE MIRROR re FROM src TO dst WITH TABLE MAPPING (t:t)")
	f.waitStatus(t, "re", "RUNNING")
	for _, c := range []struct{ sql, code, has string }{
		{"RESYNC TABLE nope.public.t", pgerrcode.UndefinedObject, `"nope"`},
		{"RESYNC MIRROR nope", pgerrcode.UndefinedObject, `"nope"`},
		{"RESYNC TABLE re.public.other", pgerrcode.UndefinedTable, "public.other"},
		{"RESYNC TABLE re.public.t WITH (strategy = 'copy')", pgerrcode.InvalidParameterValue, `"copy"`},
		{"RESYNC TABLE re.public.t WITH (speed = 'fast')", pgerrcode.SyntaxError, `"speed"`},
		{"RESYNC MIRROR re WITH (speed = 'fast')", pgerrcode.SyntaxError, `"speed"`},
	} {
		_, err := f.conn.Exec(ctx, c.sql)
		e := wantError(t, err, c.code)
		if !strings.Contains(e.Message, c.has) {
			t.Errorf("%s: %q does not name %s", c.sql, e.Message, c.has)
		}
	}
	mustExec(t, f.conn, "RESYNC MIRROR IF EXISTS nope")
	// A dependent object the swap cannot carry: refused before anything.
	mustExec(t, f.dst, `CREATE TABLE audit (n int); CREATE RULE t_audit AS ON INSERT TO t DO ALSO INSERT INTO audit VALUES (1)`)
	_, err := f.conn.Exec(ctx, "RESYNC TABLE re.public.t WITH (strategy = 'swap')")
	wantError(t, err, pgerrcode.DependentObjectsStillExist)
	mustExec(t, f.dst, `DROP RULE t_audit ON t`)
	// Paused: the request waits; a second one is refused.
	mustExec(t, f.conn, "PAUSE MIRROR re")
	mustExec(t, f.conn, "RESYNC TABLE re.t")
	_, err = f.conn.Exec(ctx, "RESYNC TABLE re.public.t WITH (strategy = 'swap')")
	wantError(t, err, pgerrcode.ObjectInUse)
	var strategy string
	if err := f.conn.QueryRow(ctx, `SELECT resync_status || '/' || resync_strategy FROM mirror_tables WHERE mirror = 're'`).Scan(&strategy); err != nil || strategy != "pending/truncate" {
		t.Fatalf("resync = %q (%v), want pending/truncate (the mirror's default)", strategy, err)
	}
	mustExec(t, f.src, `UPDATE t SET v = 'while paused' WHERE id < 10`)
	mustExec(t, f.conn, "RESUME MIRROR re")
	f.waitResync(t, "re", "public.t", "done")
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	// A blocker that appears after the request: the resync fails, names
	// it, and the mirror streams on; once it is gone, a new request works.
	mustExec(t, f.conn, "PAUSE MIRROR re")
	mustExec(t, f.conn, "RESYNC TABLE re.t WITH (strategy = 'swap')")
	mustExec(t, f.dst, `CREATE FUNCTION t_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM t; END`)
	mustExec(t, f.conn, "RESUME MIRROR re")
	f.waitResync(t, "re", "public.t", "failed")
	var why string
	if err := f.conn.QueryRow(ctx, `SELECT resync_error FROM mirror_tables WHERE mirror = 're'`).Scan(&why); err != nil || !strings.Contains(why, "t_count") {
		t.Fatalf("resync_error = %q (%v), want it to name the function", why, err)
	}
	mustExec(t, f.src, `UPDATE t SET v = 'after the failed resync' WHERE id = 1`)
	f.waitStatus(t, "re", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	mustExec(t, f.dst, `DROP FUNCTION t_count()`)
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	mustExec(t, f.conn, "RESYNC TABLE re.t WITH (strategy = 'swap')")
	f.waitResync(t, "re", "public.t", "done")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
}

// TestResyncMirror resyncs a whole mirror with soft deletes under a
// pgbench workload: the soft-deleted rows survive, the statistics are
// cleared, the slot is new, and the tables converge.
func TestResyncMirror(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	pgbench(t, f.srcURL, "-i", "-s", "1", "-q")
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g`)
	mustExec(t, f.conn, `CREATE MIRROR rm FROM src TO dst WITH TABLE MAPPING (t:t, `+pgbenchMapping+`)
		WITH (soft_delete_col_name = '_deleted')`)
	f.waitStatus(t, "rm", "RUNNING")
	mustExec(t, f.src, `DELETE FROM t WHERE id <= 10`)
	live := "(SELECT id, v FROM t WHERE NOT _deleted)"
	waitEqual(t, f.src, f.dst, "(SELECT id, v FROM t)", live, "id")
	mustExec(t, f.dst, `CREATE INDEX t_v_user_index ON t (v); CREATE VIEW t_view AS SELECT id, v FROM t WHERE NOT _deleted`)

	load := make(chan struct{})
	go func() {
		defer close(load)
		pgbench(t, f.srcURL, "-n", "-c", "2", "-T", "8")
	}()
	r := startReader(t, f.dstURL, "t_view")
	mustExec(t, f.conn, "RESYNC MIRROR rm")
	_, err := f.conn.Exec(ctx, "RESYNC MIRROR rm")
	wantError(t, err, pgerrcode.ObjectInUse)
	_, err = f.conn.Exec(ctx, "RESYNC TABLE rm.t")
	wantError(t, err, pgerrcode.ObjectInUse)
	<-load
	f.waitStatus(t, "rm", "RUNNING")
	f.waitResync(t, "rm", "public.t", "done")
	r.finish()
	for _, c := range []struct{ table, cols, key string }{
		{"pgbench_accounts", "aid, bid, abalance", "aid"}, {"pgbench_branches", "bid, bbalance", "bid"},
		{"pgbench_tellers", "tid, bid, tbalance", "tid"}, {"t", "id, v", "id"},
	} {
		waitEqual(t, f.src, f.dst, "(SELECT "+c.cols+" FROM "+c.table+")",
			"(SELECT "+c.cols+" FROM "+c.table+" WHERE NOT _deleted)", c.key)
	}
	var deleted int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM t WHERE _deleted`).Scan(&deleted); err != nil || deleted != 10 {
		t.Fatalf("%d soft-deleted rows after the resync, want 10 (%v)", deleted, err)
	}
	if r.errs.Load() > 0 || r.empties.Load() > 0 {
		t.Fatalf("a reader of a view on the table saw %d errors (last: %v) and %d empty results", r.errs.Load(), r.lastErr, r.empties.Load())
	}
	waitStatistics(t, f.dst, "t")
	var idx int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE tablename = 't' AND indexname IN ('t_v_user_index', 't_pkey')`).Scan(&idx); err != nil || idx != 2 {
		t.Fatalf("the table has %d of its 2 indexes under their names after the resync (%v)", idx, err)
	}
	var rows int64
	var resyncing bool
	if err := f.conn.QueryRow(ctx, `SELECT rows_synced, resyncing FROM mirrors WHERE name = 'rm'`).Scan(&rows, &resyncing); err != nil || resyncing {
		t.Fatalf("resyncing = %v (%v)", resyncing, err)
	}
	var phases []string
	rows2, err := f.conn.Query(ctx, `SELECT message FROM mirror_events WHERE mirror = 'rm' AND kind = 'phase' ORDER BY at`)
	if err != nil {
		t.Fatal(err)
	}
	if phases, err = pgx.CollectRows(rows2, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	want := []string{"phase SNAPSHOT", "phase RUNNING", "phase SNAPSHOT", "phase RESYNC"}
	if len(phases) != len(want) {
		t.Fatalf("phases %v, want %v", phases, want)
	}
	for i := range want {
		if phases[i] != want[i] {
			t.Fatalf("phases %v, want %v", phases, want)
		}
	}
	var slots int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'rm' AND kind = 'slot'`).Scan(&slots); err != nil || slots != 2 {
		t.Fatalf("%d slots created (%v), want 2: the resync replaces the slot", slots, err)
	}
}

// waitStatistics waits until the destination has planner statistics of
// table, which a swap resync collects right after the swap (30 s at most).
func waitStatistics(t *testing.T, dst *pgx.Conn, table string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := dst.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stats WHERE tablename = $1`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no statistics 30 s after its swap", table)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
