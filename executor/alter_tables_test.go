package executor_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
)

// writer inserts and updates rows in the source tables until stopped, one
// statement at a time: the concurrent write load of the ALTER MIRROR
// tests.
type writer struct {
	stop   chan struct{}
	done   chan struct{}
	rounds atomic.Int64
	err    atomic.Value
}

// startWriter writes into tables (each with columns id int PRIMARY KEY
// and v text) on the database at url: a new row each round, and an update
// of an older one.
func startWriter(t *testing.T, url string, tables ...string) *writer {
	t.Helper()
	w := &writer{stop: make(chan struct{}), done: make(chan struct{})}
	conn := connect(t, url)
	go func() {
		defer close(w.done)
		for i := 1; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			for _, tbl := range tables {
				_, err := conn.Exec(context.Background(), "INSERT INTO "+tbl+" VALUES (1000000 + $1::int, 'w' || $1::text)", i)
				if err == nil {
					_, err = conn.Exec(context.Background(), "UPDATE "+tbl+" SET v = 'u' || $1::text WHERE id = $1::int % 500 + 1", i)
				}
				if err != nil {
					w.err.Store(err)
					return
				}
			}
			w.rounds.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

// finish stops the writer and fails the test if a write failed.
func (w *writer) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	if err, _ := w.err.Load().(error); err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// mirrorTableNames lists the mirror's source tables in mapping order.
func (f *mirrorFixture) mirrorTableNames(t *testing.T, mirror string) string {
	t.Helper()
	rows, err := f.conn.Query(testCtx(t), `SELECT source_table FROM mirror_tables WHERE mirror = $1 ORDER BY source_table`, mirror)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, ",")
}

// published lists the tables of the source's publication.
func published(t *testing.T, src *pgx.Conn, publication string) string {
	t.Helper()
	rows, err := src.Query(testCtx(t), `SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, publication)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, ",")
}

const alterTablesSQL = `
CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
CREATE TABLE c (id int PRIMARY KEY, v text);
INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 1000) g;
INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 1000) g;
INSERT INTO c SELECT g, md5(g::text) FROM generate_series(1, 40000) g;`

// TestAlterMirrorAddDropTable adds a table to a streaming mirror under a
// write load on all tables, its load held on the destination for a while:
// the other tables keep streaming during the load, and the added table
// converges. Then it drops tables: their changes stop arriving while the
// other's go on, with and without drop_destination_table.
func TestAlterMirrorAddDropTable(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, alterTablesSQL)
	mustExec(t, f.conn, "CREATE MIRROR am FROM src TO dst WITH TABLE MAPPING (a:a, b:b)")
	f.waitStatus(t, "am", "RUNNING")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	w := startWriter(t, f.srcURL, "a", "b", "c")

	// Take a lock on the new destination table as soon as it exists: the
	// load (which empties it first) waits for it.
	locked := make(chan pgx.Tx, 1)
	go func() {
		lc := connect(t, f.dstURL)
		for {
			tx, err := lc.Begin(context.Background())
			if err != nil {
				close(locked)
				return
			}
			if _, err := tx.Exec(context.Background(), "LOCK TABLE c IN ACCESS SHARE MODE"); err == nil {
				locked <- tx
				return
			}
			_ = tx.Rollback(context.Background())
			time.Sleep(time.Millisecond)
		}
	}()
	mustExec(t, f.conn, "ALTER MIRROR am ADD TABLE MAPPING (public.c:public.c)")
	lock, ok := <-locked
	if !ok {
		t.Fatal("could not lock the destination table c")
	}
	f.waitResync(t, "am", "public.c", "in_progress")
	if got := f.mirrorTableNames(t, "am"); got != "public.a,public.b,public.c" {
		t.Fatalf("mirror tables %s after ADD TABLE", got)
	}
	if got := published(t, f.src, "sluice_am"); got != "a,b,c" {
		t.Fatalf("publication has %s after ADD TABLE, want a,b,c", got)
	}
	// The load is held; a and b keep receiving the writer's rows.
	before := count(t, f.dst, "a")
	deadline := time.Now().Add(30 * time.Second)
	for count(t, f.dst, "a") < before+20 || count(t, f.dst, "b") < before+20 {
		if time.Now().After(deadline) {
			t.Fatalf("a and b did not stream during the load of c (a: %d rows before, %d now)", before, count(t, f.dst, "a"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var step string
	if err := f.conn.QueryRow(ctx, `SELECT step FROM mirror_tables WHERE mirror = 'am' AND source_table = 'public.c'`).Scan(&step); err != nil || step != "copying" {
		t.Fatalf("step of c %q (%v) while its load waits, want copying", step, err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	f.waitResync(t, "am", "public.c", "done")
	time.Sleep(500 * time.Millisecond)
	w.finish(t)
	for _, tbl := range []string{"a", "b", "c"} {
		waitEqual(t, f.src, f.dst, tbl, tbl, "id")
	}
	var copied int64
	if err := f.conn.QueryRow(ctx, `SELECT rows_copied FROM mirror_tables WHERE mirror = 'am' AND source_table = 'public.c'`).
		Scan(&copied); err != nil || copied < 40000 {
		t.Fatalf("rows_copied of c = %d (%v), want at least 40000", copied, err)
	}
	var events int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'am' AND kind = 'tables' AND message LIKE 'added public.c%'`).
		Scan(&events); err != nil || events != 1 {
		t.Fatalf("%d events of the added table (%v), want 1", events, err)
	}

	// DROP TABLE b: its changes stop, a's go on; its destination table stays.
	mustExec(t, f.conn, "ALTER MIRROR am DROP TABLE public.b")
	if got := f.mirrorTableNames(t, "am"); got != "public.a,public.c" {
		t.Fatalf("mirror tables %s after DROP TABLE b", got)
	}
	if got := published(t, f.src, "sluice_am"); got != "a,c" {
		t.Fatalf("publication has %s after DROP TABLE b, want a,c", got)
	}
	nb := count(t, f.dst, "b")
	mustExec(t, f.src, "INSERT INTO b VALUES (-1, 'after the drop'); UPDATE b SET v = 'after' WHERE id = 1; INSERT INTO a VALUES (-1, 'after the drop')")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	if n := count(t, f.dst, "b"); n != nb {
		t.Fatalf("b has %d rows on the destination after the drop, had %d", n, nb)
	}
	var v string
	if err := f.dst.QueryRow(ctx, "SELECT v FROM b WHERE id = 1").Scan(&v); err != nil || v == "after" {
		t.Fatalf("an update of b after the drop arrived (%q, %v)", v, err)
	}

	// DROP TABLE c with its destination table.
	mustExec(t, f.conn, "ALTER MIRROR am DROP TABLE c WITH (drop_destination_table = true)")
	var exists bool
	if err := f.dst.QueryRow(ctx, "SELECT to_regclass('public.c') IS NOT NULL").Scan(&exists); err != nil || exists {
		t.Fatalf("destination table c exists (%v) after drop_destination_table", err)
	}
	mustExec(t, f.src, "INSERT INTO a VALUES (-2, 'still streaming')")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	f.waitStatus(t, "am", "RUNNING")
	var dropped int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'am' AND kind = 'tables' AND message LIKE 'dropped public.%'`).
		Scan(&dropped); err != nil || dropped != 2 {
		t.Fatalf("%d events of dropped tables (%v), want 2", dropped, err)
	}
}

// TestAlterMirrorTablesErrors checks the refusals of ADD TABLE and DROP
// TABLE, each leaving the catalog, the publication and the destination as
// they were.
func TestAlterMirrorTablesErrors(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, alterTablesSQL+`CREATE TABLE nokey (id int, v text); CREATE TABLE d (id int PRIMARY KEY, v text);`)
	mustExec(t, f.dst, "CREATE TABLE taken (id int)")
	mustExec(t, f.conn, "CREATE MIRROR ae FROM src TO dst WITH TABLE MAPPING (a:a)")
	f.waitStatus(t, "ae", "RUNNING")
	dstTables := func() string {
		rows, err := f.dst.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(names, ",")
	}
	wantDst := dstTables()
	for _, tc := range []struct{ sql, code, msg string }{
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d, missing:missing)", pgerrcode.UndefinedTable, "source table public.missing does not exist"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d, nokey:nokey)", pgerrcode.ObjectNotInPrerequisiteState, "public.nokey has no primary key"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d, b:taken)", pgerrcode.DuplicateTable, "destination table public.taken already exists"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d, a:a2)", pgerrcode.DuplicateObject, "table public.a is already in mirror"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:a)", pgerrcode.DuplicateObject, "destination table public.a already receives public.a"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d, d:e)", pgerrcode.DuplicateObject, "table public.d is mapped twice"},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d) WITH (initial_copy = false)", pgerrcode.SyntaxError, `unknown option "initial_copy"`},
		{"ALTER MIRROR ae ADD TABLE MAPPING (d:d) WITH (do_initial_copy = maybe)", pgerrcode.InvalidParameterValue, `"maybe" is not a boolean`},
		{"ALTER MIRROR ae DROP TABLE a", pgerrcode.ObjectNotInPrerequisiteState, "table public.a is the last table of mirror"},
		{"ALTER MIRROR ae DROP TABLE b", pgerrcode.UndefinedTable, "table public.b is not in mirror"},
		{"ALTER MIRROR ae DROP TABLE a WITH (drop_destination_tables = true)", pgerrcode.SyntaxError, `unknown option "drop_destination_tables"`},
		{"ALTER MIRROR nope ADD TABLE MAPPING (d:d)", pgerrcode.UndefinedObject, `mirror "nope" does not exist`},
	} {
		_, err := f.conn.Exec(ctx, tc.sql)
		e := wantError(t, err, tc.code)
		if !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tc.sql, e.Message, tc.msg)
		}
		if got := f.mirrorTableNames(t, "ae"); got != "public.a" {
			t.Fatalf("%s: mirror tables %s after a refusal", tc.sql, got)
		}
		if got := published(t, f.src, "sluice_ae"); got != "a" {
			t.Fatalf("%s: publication has %s after a refusal", tc.sql, got)
		}
		if got := dstTables(); got != wantDst {
			t.Fatalf("%s: destination tables %s after a refusal, were %s", tc.sql, got, wantDst)
		}
	}
	mustExec(t, f.conn, "ALTER MIRROR IF EXISTS nope DROP TABLE a")
	var events int
	if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'ae' AND kind = 'tables'`).Scan(&events); err != nil || events != 0 {
		t.Fatalf("%d table events after refusals (%v)", events, err)
	}

	// A dependent view refuses drop_destination_table.
	mustExec(t, f.conn, "ALTER MIRROR ae ADD TABLE MAPPING (d:d) WITH (do_initial_copy = false)")
	mustExec(t, f.dst, "CREATE VIEW dv AS SELECT * FROM d")
	_, err := f.conn.Exec(ctx, "ALTER MIRROR ae DROP TABLE d WITH (drop_destination_table = true)")
	wantError(t, err, pgerrcode.DependentObjectsStillExist)
	if got := f.mirrorTableNames(t, "ae"); got != "public.a,public.d" {
		t.Fatalf("mirror tables %s after a refused drop", got)
	}
}

// TestAlterMirrorAddWithoutCopyThenResync adds a table without its
// initial load: only its changes from then on arrive. RESYNC MIRROR then
// keeps it and loads it whole.
func TestAlterMirrorAddWithoutCopyThenResync(t *testing.T) {
	f := newMirrorFixture(t)
	mustExec(t, f.src, alterTablesSQL)
	mustExec(t, f.conn, "CREATE MIRROR an FROM src TO dst WITH TABLE MAPPING (a:a)")
	f.waitStatus(t, "an", "RUNNING")
	mustExec(t, f.conn, "ALTER MIRROR an ADD TABLE MAPPING (b:b_copy) WITH (do_initial_copy = false)")
	mustExec(t, f.src, "INSERT INTO b VALUES (-1, 'after the add'); UPDATE b SET v = 'updated' WHERE id = 7")
	deadline := time.Now().Add(60 * time.Second)
	for count(t, f.dst, "b_copy") < 2 {
		if time.Now().After(deadline) {
			var status, errText string
			_ = f.conn.QueryRow(testCtx(t), "SELECT status, coalesce(error, '') FROM mirrors WHERE name = 'an'").Scan(&status, &errText)
			t.Fatalf("changes of the added table did not arrive (mirror %s, error %q)", status, errText)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := count(t, f.dst, "b_copy"); n != 2 {
		t.Fatalf("b_copy has %d rows, want the 2 changed after the add", n)
	}
	mustExec(t, f.conn, "RESYNC MIRROR an")
	f.waitStatus(t, "an", "RUNNING")
	if got := f.mirrorTableNames(t, "an"); got != "public.a,public.b" {
		t.Fatalf("mirror tables %s after RESYNC MIRROR", got)
	}
	waitEqual(t, f.src, f.dst, "b", "b_copy", "id")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
}

// TestKillDuringAddedTableLoad kills sluice (SIGKILL) while a table added
// to a streaming mirror is being loaded, under a write load on all tables:
// after the restart the load finishes and every table converges.
func TestKillDuringAddedTableLoad(t *testing.T) {
	p := startProcess(t)
	srcURL, dstURL := peerCluster.NewDB(t), peerCluster.NewDB(t)
	src, dst := connect(t, srcURL), connect(t, dstURL)
	mustExec(t, src, alterTablesSQL)
	conn := connect(t, p.URL())
	mustExec(t, conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(srcURL)+")")
	mustExec(t, conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(dstURL)+")")
	mustExec(t, conn, `CREATE MIRROR ka FROM src TO dst WITH TABLE MAPPING (a:a, b:b)
		WITH (snapshot_num_rows_per_partition = 2000, snapshot_max_parallel_workers = 1)`)
	conn.Close(context.Background())
	status := func(c *pgx.Conn) (string, string, int) {
		var mirror, resync string
		var done int
		_ = c.QueryRow(context.Background(), `SELECT m.status, coalesce(t.resync_status, ''), t.partitions_done
			FROM mirrors m JOIN mirror_tables t ON t.mirror = m.name
			WHERE m.name = 'ka' AND t.source_table = 'public.c'`).Scan(&mirror, &resync, &done)
		return mirror, resync, done
	}
	waitFor(t, p, "streaming", func(c *pgx.Conn) bool {
		var s string
		_ = c.QueryRow(context.Background(), `SELECT status FROM mirrors WHERE name = 'ka'`).Scan(&s)
		return s == "RUNNING"
	})
	w := startWriter(t, srcURL, "a", "b", "c")
	c := connect(t, p.URL())
	mustExec(t, c, "ALTER MIRROR ka ADD TABLE MAPPING (c:c)")
	c.Close(context.Background())
	waitFor(t, p, "a partly done load of c", func(c *pgx.Conn) bool {
		_, resync, done := status(c)
		return resync == "in_progress" && done >= 2
	})
	p.Kill()
	time.Sleep(300 * time.Millisecond)
	p.Start()
	waitFor(t, p, "the load of c done", func(c *pgx.Conn) bool {
		m, resync, _ := status(c)
		return m == "RUNNING" && resync == "done"
	})
	time.Sleep(300 * time.Millisecond)
	w.finish(t)
	for _, tbl := range []string{"a", "b", "c"} {
		waitEqual(t, src, dst, tbl, tbl, "id")
	}
}

// TestAlterMirrorDropTableDuringLoad drops a table whose load (after ADD
// TABLE) waits for a lock on the destination: the load ends, the
// destination forgets its resync state, and the mirror streams on.
func TestAlterMirrorDropTableDuringLoad(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, alterTablesSQL)
	mustExec(t, f.conn, "CREATE MIRROR ad FROM src TO dst WITH TABLE MAPPING (a:a)")
	f.waitStatus(t, "ad", "RUNNING")
	locked := make(chan pgx.Tx, 1)
	go func() {
		lc := connect(t, f.dstURL)
		for {
			tx, err := lc.Begin(context.Background())
			if err != nil {
				close(locked)
				return
			}
			if _, err := tx.Exec(context.Background(), "LOCK TABLE c IN ACCESS SHARE MODE"); err == nil {
				locked <- tx
				return
			}
			_ = tx.Rollback(context.Background())
			time.Sleep(time.Millisecond)
		}
	}()
	mustExec(t, f.conn, "ALTER MIRROR ad ADD TABLE MAPPING (c:c)")
	lock, ok := <-locked
	if !ok {
		t.Fatal("could not lock the destination table c")
	}
	f.waitResync(t, "ad", "public.c", "in_progress")
	mustExec(t, f.conn, "ALTER MIRROR ad DROP TABLE c")
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.mirrorTableNames(t, "ad"); got != "public.a" {
		t.Fatalf("mirror tables %s after dropping the table being loaded", got)
	}
	var states int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FROM _sluice.table_state WHERE mirror = 'ad'`).Scan(&states); err != nil || states != 0 {
		t.Fatalf("%d table resync states left on the destination (%v)", states, err)
	}
	mustExec(t, f.src, "INSERT INTO a VALUES (-1, 'after'); INSERT INTO c VALUES (-1, 'after')")
	waitEqual(t, f.src, f.dst, "a", "a", "id")
	f.waitStatus(t, "ad", "RUNNING")
	var n int64
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM c WHERE id = -1").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a row of the dropped table arrived (%d, %v)", n, err)
	}
}

// TestAlterMirrorAddTableIndexes adds a table to a mirror with
// replicate_indexes: the added table gets the source's index after its
// load, as the mirror's first tables did.
func TestAlterMirrorAddTableIndexes(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, alterTablesSQL+"CREATE INDEX c_v ON c (v);")
	mustExec(t, f.conn, "CREATE MIRROR ai FROM src TO dst WITH TABLE MAPPING (a:a) WITH (replicate_indexes = true)")
	f.waitStatus(t, "ai", "RUNNING")
	mustExec(t, f.conn, "ALTER MIRROR ai ADD TABLE MAPPING (c:c)")
	f.waitResync(t, "ai", "public.c", "done")
	waitEqual(t, f.src, f.dst, "c", "c", "id")
	var defs []string
	rows, err := f.dst.Query(ctx, `SELECT indexdef FROM pg_indexes WHERE tablename = 'c' ORDER BY indexname`)
	if err == nil {
		defs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(defs) != 2 || !strings.Contains(defs[1], "(v)") {
		t.Fatalf("indexes of the added table: %q (%v), want its key and the index on v", defs, err)
	}
}
