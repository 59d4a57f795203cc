package executor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/internal/testbed"
)

// rangeHolds reports whether range r ("[a, b)") holds key.
func rangeHolds(r string, key int64) bool {
	var a, b int64
	if _, err := fmt.Sscanf(r, "[%d, %d)", &a, &b); err != nil {
		return false
	}
	return a <= key && key < b
}

// writeLoad writes to the source's items table until stopped: inserts,
// updates and deletes of ids from 100000 on, in small transactions.
type writeLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup
	errs []error
}

func startLoad(t *testing.T, url string, stmts func(i int) string) *writeLoad {
	t.Helper()
	conn := connect(t, url)
	l := &writeLoad{stop: make(chan struct{})}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if _, err := conn.Exec(context.Background(), stmts(i)); err != nil {
				l.errs = append(l.errs, err)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(l.end)
	return l
}

// end stops the load once.
func (l *writeLoad) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// itemsLoad is the write load of the validation tests.
func itemsLoad(i int) string {
	id := 100000 + i
	return fmt.Sprintf(`BEGIN;
INSERT INTO items (id, name, price, at, raw, ok, d, doc, u, tags, f) VALUES (%[1]d, 'load %[1]d', %[1]d * 0.5, now(), '\x0102', true, current_date, '{"a": 1}', gen_random_uuid(), ARRAY['x'], 0.1);
UPDATE items SET name = 'load updated %[1]d', price = price + 1 WHERE id = %[2]d;
DELETE FROM items WHERE id = %[3]d;
COMMIT`, id, 100000+i/2, 100000+i/3-1)
}

const validateItemsSQL = `
CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(12,2), at timestamptz, raw bytea, ok bool, d date,
  doc jsonb, u uuid, tags text[], f float8);
INSERT INTO items SELECT g, 'item ' || g, g * 1.25, '2024-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 minute',
  decode(md5(g::text), 'hex'), g % 2 = 0, date '2020-01-01' + g, jsonb_build_object('g', g), md5(g::text)::uuid,
  ARRAY['a', NULL], g / 3.0 FROM generate_series(1, 5000) g;
UPDATE items SET name = NULL, price = NULL, at = NULL, raw = NULL WHERE id % 97 = 0;
CREATE TABLE notes (k text PRIMARY KEY, body text);
INSERT INTO notes SELECT 'k' || g, 'body ' || g FROM generate_series(1, 300) g;`

// TestValidateMirror validates a Postgres-to-Postgres mirror under a write
// load: equal in both modes; a row changed by hand on the destination
// makes the checksum name its key range, a row deleted there the counts
// differ; results are recorded; refused cases say why.
func TestValidateMirror(t *testing.T) {
	f := newMirrorFixture(t)
	mustExec(t, f.src, validateItemsSQL)
	mustExec(t, f.conn, `CREATE MIRROR vm FROM src TO dst WITH TABLE MAPPING (public.items:public.items, public.notes:public.notes)
		WITH (do_initial_copy = true)`)
	f.waitStatus(t, "vm", "RUNNING")
	load := startLoad(t, f.srcURL, itemsLoad)

	for _, mode := range []string{"count", "checksum"} {
		got := validateRows(t, f.conn, "VALIDATE MIRROR vm WITH (mode = '"+mode+"')")
		if len(got) != 2 {
			t.Fatalf("%s: %d rows, want 2: %v", mode, len(got), got)
		}
		for _, tbl := range []string{"public.items", "public.notes"} {
			r := got[tbl]
			if r.Status != "equal" || r.Source != r.Dest || r.Source == 0 {
				t.Errorf("%s: %s: %+v, want equal", mode, tbl, r)
			}
			if mode == "checksum" && len(r.Ranges) != 0 || mode == "count" && r.Ranges != nil {
				t.Errorf("%s: %s: ranges %q", mode, tbl, r.Ranges)
			}
		}
	}

	// By hand on the destination: one row changed, outside the load's ids.
	mustExec(t, f.dst, `UPDATE items SET name = 'tampered' WHERE id = 1500`)
	got := validateRows(t, f.conn, "VALIDATE MIRROR vm TABLE items WITH (mode = checksum)", true)
	r, ok := got["public.items"]
	if len(got) != 1 || !ok || r.Status != "different" || r.Source != r.Dest || len(r.Ranges) != 1 || !rangeHolds(r.Ranges[0], 1500) {
		t.Fatalf("after a change on the destination: %+v", got)
	}
	got = validateRows(t, f.conn, "VALIDATE MIRROR vm TABLE public.items", true)
	if r := got["public.items"]; r.Status != "equal" || r.Ranges != nil {
		t.Fatalf("count mode after a change (same count): %+v", r)
	}
	mustExec(t, f.dst, `DELETE FROM items WHERE id = 2500`)
	got = validateRows(t, f.conn, "VALIDATE MIRROR vm TABLE public.items")
	if r := got["public.items"]; r.Status != "different" || r.Source != r.Dest+1 {
		t.Fatalf("count mode after a delete on the destination: %+v", r)
	}
	got = validateRows(t, f.conn, "VALIDATE MIRROR vm TABLE public.notes WITH (mode = checksum)")
	if r := got["public.notes"]; r.Status != "equal" {
		t.Fatalf("notes: %+v", r)
	}
	mustExec(t, f.dst, `UPDATE notes SET body = 'x' WHERE k = 'k7'`)
	got = validateRows(t, f.conn, "VALIDATE MIRROR vm TABLE public.notes WITH (mode = checksum)")
	if r := got["public.notes"]; r.Status != "different" || len(r.Ranges) != 1 || r.Ranges[0] != "(whole table)" {
		t.Fatalf("notes after a change: %+v", r)
	}
	load.end()
	if len(load.errs) > 0 {
		t.Fatalf("load: %v", load.errs)
	}
	// The mirror kept streaming: the load's rows all arrived.
	const loadRows = `SELECT count(*)::text || ' ' || coalesce(sum(hashtext(name || price::text)), 0)::text FROM items WHERE id >= 100000`
	waitSame2(t, f.src, f.dst, loadRows)

	var n int
	var last string
	if err := f.conn.QueryRow(testCtx(t), `SELECT count(*), (array_agg(status ORDER BY validated_at DESC))[1]
		FROM mirror_validations WHERE mirror = 'vm' AND source_table = 'public.notes'`).Scan(&n, &last); err != nil {
		t.Fatal(err)
	}
	if n != 4 || last != "different" {
		t.Fatalf("mirror_validations for notes: %d rows, last %q", n, last)
	}

	// Refused.
	_, err := f.conn.Exec(testCtx(t), "VALIDATE MIRROR nope")
	wantError(t, err, pgerrcode.UndefinedObject)
	_, err = f.conn.Exec(testCtx(t), "VALIDATE MIRROR vm TABLE public.other")
	wantError(t, err, pgerrcode.UndefinedTable)
	_, err = f.conn.Exec(testCtx(t), "VALIDATE MIRROR vm WITH (speed = 'fast')")
	wantError(t, err, pgerrcode.SyntaxError)
	_, err = f.conn.Exec(testCtx(t), "VALIDATE MIRROR vm WITH (mode = 'exact')")
	wantError(t, err, pgerrcode.InvalidParameterValue)
	mustExec(t, f.conn, "PAUSE MIRROR vm")
	_, err = f.conn.Exec(testCtx(t), "VALIDATE MIRROR vm")
	if e := wantError(t, err, pgerrcode.ObjectNotInPrerequisiteState); !strings.Contains(e.Message, "paused") {
		t.Fatalf("paused: %q", e.Message)
	}
}

// waitSame2 waits until query returns the same text on both connections.
func waitSame2(t *testing.T, a, b *pgx.Conn, query string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var x, y string
	for time.Now().Before(deadline) {
		if err := a.QueryRow(testCtx(t), query).Scan(&x); err != nil {
			t.Fatal(err)
		}
		if err := b.QueryRow(testCtx(t), query).Scan(&y); err != nil {
			t.Fatal(err)
		}
		if x == y {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: source %s, destination %s", query, x, y)
}

// TestValidateUnderPgbench validates, in checksum mode, a mirror that
// pgbench keeps busy: every validation runs while pgbench writes (the
// source commits pgbench transactions during each one) and reports every
// table equal, with pgbench's row counts on both sides (each side read at
// the same point while changes stream: the destination had applied the
// stream up to the validation's snapshot); the mirror keeps streaming and
// ends equal. The load lasts as long as the validations take.
func TestValidateUnderPgbench(t *testing.T) {
	const validations = 3
	f := newMirrorFixture(t)
	pgbench(t, f.srcURL, "-i", "-s", "1", "-q")
	mustExec(t, f.conn, `CREATE MIRROR vp FROM src TO dst WITH TABLE MAPPING (`+pgbenchMapping+`) WITH (max_batch_size = 200)`)
	f.waitStatus(t, "vp", "RUNNING")
	// pgbench_history is not mirrored (no key): its rows on the source
	// count the load's transactions.
	committed := func() int64 {
		var n int64
		if err := f.src.QueryRow(testCtx(t), `SELECT count(*) FROM pgbench_history`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	rows := map[string]int64{"pgbench_accounts": 100000, "pgbench_branches": 1, "pgbench_tellers": 10}
	load := testbed.StartPgbench(t, f.srcURL, 5*time.Minute, "-n", "-c", "3")
	for n := int64(0); n == 0; n = committed() {
		load.MustRun(t, "its first transaction")
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i <= validations; i++ {
		before := committed()
		got := validateRows(t, f.conn, "VALIDATE MIRROR vp WITH (mode = 'checksum')")
		during := committed() - before
		load.MustRun(t, fmt.Sprintf("validation %d ended", i))
		if len(got) != len(pgbenchTables) {
			t.Fatalf("validation %d: %d rows, want %d: %+v", i, len(got), len(pgbenchTables), got)
		}
		for _, tbl := range pgbenchTables {
			if r := got["public."+tbl.Name]; r.Status != "equal" || r.Source != rows[tbl.Name] || r.Dest != r.Source || len(r.Ranges) != 0 {
				t.Fatalf("validation %d under load: %s: %+v, want equal, %d rows on each side", i, tbl.Name, r, rows[tbl.Name])
			}
		}
		if during == 0 {
			t.Fatalf("validation %d: pgbench committed nothing while it ran", i)
		}
		t.Logf("validation %d: equal; pgbench committed %d transactions meanwhile", i, during)
	}
	load.Stop(t)
	for _, tbl := range pgbenchTables {
		waitEqual(t, f.src, f.dst, tbl.Name, tbl.Name, tbl.Key)
	}
}

// TestValidateSoftDelete validates a Postgres destination that keeps
// deleted rows marked (soft_delete_col_name) and has a synced-at column:
// the marked rows are not counted, the extra columns not compared.
func TestValidateSoftDelete(t *testing.T) {
	f := newMirrorFixture(t)
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
	mustExec(t, f.conn, `CREATE MIRROR vsoft FROM src TO dst WITH TABLE MAPPING (t:t)
		WITH (soft_delete_col_name = '_deleted', synced_at_col_name = '_synced_at')`)
	f.waitStatus(t, "vsoft", "RUNNING")
	mustExec(t, f.src, `DELETE FROM t WHERE id <= 10; INSERT INTO t VALUES (5, 'back')`)
	waitEqual(t, f.src, f.dst, "(SELECT id, v FROM t)", "(SELECT id, v FROM t WHERE NOT _deleted)", "id")
	for _, mode := range []string{"count", "checksum"} {
		got := validateRows(t, f.conn, "VALIDATE MIRROR vsoft WITH (mode = "+mode+")")
		if r := got["public.t"]; r.Status != "equal" || r.Source != 91 || r.Dest != 91 {
			t.Fatalf("%s: %+v, want 91 rows on each side, equal", mode, r)
		}
	}
}
