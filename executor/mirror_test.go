package executor_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// mirrorFixture is a sluice with a source and a destination peer, each a
// fresh database of the peer cluster.
type mirrorFixture struct {
	s        *testbed.Sluice
	conn     *pgx.Conn // to sluice
	srcURL   string
	dstURL   string
	src, dst *pgx.Conn
}

func newMirrorFixture(t *testing.T) *mirrorFixture {
	t.Helper()
	f := &mirrorFixture{s: startSluice(t, testbed.Options{})}
	f.conn = connect(t, f.s.URL())
	f.srcURL, f.dstURL = peerCluster.NewDB(t), peerCluster.NewDB(t)
	f.src, f.dst = connect(t, f.srcURL), connect(t, f.dstURL)
	mustExec(t, f.conn, "CREATE PEER src FROM POSTGRES WITH ("+peerOptions(f.srcURL)+")")
	mustExec(t, f.conn, "CREATE PEER dst FROM POSTGRES WITH ("+peerOptions(f.dstURL)+")")
	return f
}

// waitStatus waits until the mirror shows status want.
func (f *mirrorFixture) waitStatus(t *testing.T, mirror, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var status, errText string
	for time.Now().Before(deadline) {
		err := f.conn.QueryRow(testCtx(t), "SELECT status, coalesce(error, '') FROM mirrors WHERE name = $1", mirror).
			Scan(&status, &errText)
		if err == nil && status == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("mirror %s: status %s (error %q), want %s", mirror, status, errText, want)
}

const mirrorTypesSQL = `
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE items (
  id bigint PRIMARY KEY, name text, price numeric(12,2), tags text[], doc jsonb, at timestamptz, m mood,
  p posint, raw bytea, u uuid, big text, secret text
);
ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO items SELECT g, 'item ' || g, g * 1.25, ARRAY['a', 'b' || g], jsonb_build_object('g', g),
  '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 minute', CASE WHEN g % 2 = 0 THEN 'happy' ELSE 'sad' END::mood,
  g, decode(md5(g::text), 'hex'), md5(g::text)::uuid, repeat(md5(g::text), 200), 'pw' || g FROM generate_series(1, 5000) g;
CREATE TABLE orders (id int PRIMARY KEY, item_id bigint, qty int);
INSERT INTO orders SELECT g, g % 5000 + 1, g % 7 FROM generate_series(1, 3000) g;
`

func TestMirrorLifecycle(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, mirrorTypesSQL)
	mustExec(t, f.conn, `CREATE MIRROR life FROM src TO dst WITH TABLE MAPPING (
		{from: public.items, to: copy.items, exclude: [secret]}, public.orders:public.orders)
		WITH (do_initial_copy = true, snapshot_num_rows_per_partition = 700, snapshot_max_parallel_workers = 3)`)
	f.waitStatus(t, "life", "RUNNING")
	const itemCols = "id, name, price, tags, doc, at, m::text, p, raw, u, big"
	srcItems := fmt.Sprintf("(SELECT %s FROM public.items)", itemCols)
	dstItems := fmt.Sprintf("(SELECT %s FROM copy.items)", itemCols)
	waitEqual(t, f.src, f.dst, srcItems, dstItems, "id")
	waitEqual(t, f.src, f.dst, "public.orders", "public.orders", "id")

	var copied, estimated int64
	var status string
	if err := f.conn.QueryRow(ctx, `SELECT status, rows_copied, rows_estimated FROM mirror_tables
		WHERE mirror = 'life' AND source_table = 'public.items'`).Scan(&status, &copied, &estimated); err != nil {
		t.Fatal(err)
	}
	if copied != 5000 || status != "running" {
		t.Errorf("mirror_tables: status %s, rows_copied %d (estimated %d)", status, copied, estimated)
	}

	// Changes of every kind, including a key change and an update that
	// leaves the TOASTed column alone.
	mustExec(t, f.src, `
		INSERT INTO items (id, name, big) VALUES (10001, 'new', repeat('x', 10000));
		UPDATE items SET name = 'renamed' WHERE id BETWEEN 1 AND 100;
		UPDATE items SET id = 20001 WHERE id = 200;
		DELETE FROM items WHERE id BETWEEN 300 AND 350;
		UPDATE items SET price = price + 1 WHERE id % 10 = 0;
		BEGIN; INSERT INTO orders VALUES (5001, 1, 1); DELETE FROM orders WHERE id = 5001; COMMIT;
		TRUNCATE orders;
		INSERT INTO orders SELECT g, g, g FROM generate_series(1, 10) g;`)
	waitEqual(t, f.src, f.dst, srcItems, dstItems, "id")
	waitEqual(t, f.src, f.dst, "public.orders", "public.orders", "id")

	// A column added on the source appears on the destination, and
	// existing rows get its default.
	mustExec(t, f.src, `ALTER TABLE orders ADD COLUMN note text DEFAULT 'n/a'; INSERT INTO orders VALUES (11, 1, 1, 'hello')`)
	waitEqual(t, f.src, f.dst, "public.orders", "public.orders", "id")

	// Pause: changes wait in the slot; resume: they arrive.
	mustExec(t, f.conn, "PAUSE MIRROR life")
	f.waitStatus(t, "life", "PAUSED")
	mustExec(t, f.src, "UPDATE orders SET qty = 99 WHERE id = 1")
	time.Sleep(500 * time.Millisecond)
	var qty int
	if err := f.dst.QueryRow(ctx, "SELECT qty FROM orders WHERE id = 1").Scan(&qty); err != nil || qty == 99 {
		t.Fatalf("paused mirror applied a change: qty = %d, %v", qty, err)
	}
	mustExec(t, f.conn, "RESUME MIRROR life")
	f.waitStatus(t, "life", "RUNNING")
	waitEqual(t, f.src, f.dst, "public.orders", "public.orders", "id")

	var inserts, updates, deletes int64
	if err := f.conn.QueryRow(ctx, `SELECT inserts, updates, deletes FROM mirror_tables
		WHERE mirror = 'life' AND source_table = 'public.items'`).Scan(&inserts, &updates, &deletes); err != nil {
		t.Fatal(err)
	}
	if inserts != 1 || updates != 594 || deletes != 51 {
		t.Errorf("items counts: %d inserts, %d updates, %d deletes", inserts, updates, deletes)
	}
	var events int
	if err := f.conn.QueryRow(ctx, "SELECT count(*) FROM mirror_events WHERE mirror = 'life'").Scan(&events); err != nil || events < 4 {
		t.Errorf("mirror_events: %d, %v", events, err)
	}

	// Drop: slot and publication go, destination tables stay.
	mustExec(t, f.conn, "DROP MIRROR life")
	var slots, pubs int
	if err := f.src.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()), (SELECT count(*) FROM pg_publication)").
		Scan(&slots, &pubs); err != nil || slots != 0 || pubs != 0 {
		t.Fatalf("after DROP MIRROR: %d slots, %d publications, %v", slots, pubs, err)
	}
	var n int
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM copy.items").Scan(&n); err != nil || n == 0 {
		t.Fatalf("destination table gone after DROP MIRROR: %d, %v", n, err)
	}
}

func TestMirrorValidation(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE nokey (v text);`)
	mustExec(t, f.dst, `CREATE TABLE taken (id int)`)
	tests := []struct{ name, sql, code string }{
		{"unknown peer", "CREATE MIRROR val FROM nosuch TO dst WITH TABLE MAPPING (a:a)", pgerrcode.UndefinedObject},
		{"missing table", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (public.nosuch:public.nosuch)", pgerrcode.UndefinedTable},
		{"no primary key", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (nokey:nokey)", pgerrcode.ObjectNotInPrerequisiteState},
		{"destination exists", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (a:taken)", pgerrcode.DuplicateTable},
		{"unknown option", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (a:a) WITH (colour = 1)", pgerrcode.SyntaxError},
		{"bad option", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (a:a) WITH (max_batch_size = 'x')", pgerrcode.InvalidParameterValue},
		{"unknown column", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING ({from: a, to: a, exclude: [nope]})", pgerrcode.UndefinedColumn},
		{"twice", "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (a:a, a:b)", pgerrcode.DuplicateObject},
		{"unknown mirror", "PAUSE MIRROR nosuch", pgerrcode.UndefinedObject},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.conn.Exec(ctx, tt.sql)
			wantError(t, err, tt.code)
		})
	}
	var n int
	if err := f.conn.QueryRow(ctx, "SELECT count(*) FROM mirrors").Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed CREATE MIRROR left %d mirrors (%v)", n, err)
	}
	if err := f.src.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_replication_slots WHERE database = current_database()) + (SELECT count(*) FROM pg_publication)").
		Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed CREATE MIRROR left %d slots and publications (%v)", n, err)
	}
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed CREATE MIRROR left a destination table (%v)", err)
	}
	// A peer in use cannot be dropped.
	mustExec(t, f.conn, "CREATE MIRROR val FROM src TO dst WITH TABLE MAPPING (a:a)")
	_, err := f.conn.Exec(ctx, "DROP PEER src")
	wantError(t, err, pgerrcode.DependentObjectsStillExist)
	mustExec(t, f.conn, "DROP MIRROR val WITH (drop_destination_tables = true)")
	if err := f.dst.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("drop_destination_tables left the table (%v)", err)
	}
}

func TestMirrorUnderPgbench(t *testing.T) {
	f := newMirrorFixture(t)
	pgbench(t, f.srcURL, "-i", "-s", "2", "-q")
	done := make(chan struct{})
	go func() {
		defer close(done)
		pgbench(t, f.srcURL, "-n", "-c", "4", "-T", "8")
	}()
	time.Sleep(time.Second) // the load starts while pgbench writes
	mustExec(t, f.conn, `CREATE MIRROR bench FROM src TO dst WITH TABLE MAPPING (
		pgbench_accounts:pgbench_accounts, pgbench_branches:pgbench_branches, pgbench_tellers:pgbench_tellers)
		WITH (snapshot_num_rows_per_partition = 50000)`)
	<-done
	f.waitStatus(t, "bench", "RUNNING")
	for _, tbl := range pgbenchTables {
		waitEqual(t, f.src, f.dst, tbl.Name, tbl.Name, tbl.Key)
	}
	_ = context.Background
}

func TestMirrorFailureRecovers(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'ok')`)
	mustExec(t, f.conn, "CREATE MIRROR fails FROM src TO dst WITH TABLE MAPPING (t:t)")
	f.waitStatus(t, "fails", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	// The destination refuses every write (its database turned read-only
	// for new sessions, which the flow's retries open): the mirror fails,
	// says why, retries. (A constraint a row breaks would fail that table
	// alone: table_hold_test.go.)
	var dstDB string
	if err := f.dst.QueryRow(ctx, "SELECT current_database()").Scan(&dstDB); err != nil {
		t.Fatal(err)
	}
	mustExec(t, f.dst, `ALTER DATABASE `+pgx.Identifier{dstDB}.Sanitize()+` SET default_transaction_read_only = on`)
	mustExec(t, f.dst, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	mustExec(t, f.src, `INSERT INTO t VALUES (2, 'bad')`)
	f.waitStatus(t, "fails", "FAILED")
	// The first error may be the ended sessions'; the retries meet the
	// read-only database.
	var msg string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err := f.conn.QueryRow(ctx, "SELECT coalesce(error, '') FROM mirrors WHERE name = 'fails'").Scan(&msg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(msg, "read-only") {
			break
		}
	}
	if !strings.Contains(msg, "read-only") {
		t.Fatalf("error = %q; want it to say the destination is read-only", msg)
	}
	// Fixed on the destination: the retry succeeds and the error clears.
	mustExec(t, f.dst, `ALTER DATABASE `+pgx.Identifier{dstDB}.Sanitize()+` RESET default_transaction_read_only`)
	f.waitStatus(t, "fails", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	var kinds []string
	rows, err := f.conn.Query(ctx, "SELECT kind FROM mirror_events WHERE mirror = 'fails' AND kind IN ('error', 'recovered') ORDER BY at")
	if err != nil {
		t.Fatal(err)
	}
	if kinds, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(kinds) < 2 || kinds[len(kinds)-1] != "recovered" {
		t.Fatalf("events = %v, %v", kinds, err)
	}
}

func TestMirrorSoftDelete(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	mustExec(t, f.conn, `CREATE MIRROR soft FROM src TO dst WITH TABLE MAPPING (t:t)
		WITH (soft_delete_col_name = '_deleted', synced_at_col_name = '_synced_at')`)
	f.waitStatus(t, "soft", "RUNNING")
	mustExec(t, f.src, `DELETE FROM t WHERE id <= 10; INSERT INTO t VALUES (5, 'back'); UPDATE t SET v = 'changed' WHERE id = 50`)
	live := "(SELECT id, v FROM t WHERE NOT _deleted)"
	waitEqual(t, f.src, f.dst, "(SELECT id, v FROM t)", live, "id")
	var deleted, unsynced int
	if err := f.dst.QueryRow(ctx, `SELECT count(*) FILTER (WHERE _deleted), count(*) FILTER (WHERE _synced_at IS NULL) FROM t`).
		Scan(&deleted, &unsynced); err != nil {
		t.Fatal(err)
	}
	if deleted != 9 || unsynced != 0 {
		t.Fatalf("%d soft-deleted rows (want 9), %d rows without _synced_at", deleted, unsynced)
	}
}

func TestMirrorSlotAdvancesWhenIdle(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE other (id int)`)
	mustExec(t, f.conn, "CREATE MIRROR idle FROM src TO dst WITH TABLE MAPPING (t:t)")
	f.waitStatus(t, "idle", "RUNNING")
	// WAL moves on, but not in the mirrored table.
	mustExec(t, f.src, `INSERT INTO other SELECT generate_series(1, 1000)`)
	var target string
	if err := f.src.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&target); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var passed bool
		err := f.src.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_idle'`,
			target).Scan(&passed)
		if err != nil {
			t.Fatal(err)
		}
		if passed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of an idle mirror did not advance past %s", target)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
