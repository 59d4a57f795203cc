package executor_test

import (
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/sluicedb/sluice/executor"
)

// batchLog records the batches one mirror applies (executor.SetBatchHook).
type batchLog struct {
	mu      sync.Mutex
	batches []struct{ rows, maxBatch int }
}

func watchBatches(t *testing.T, mirror string) *batchLog {
	l := &batchLog{}
	restore := executor.SetBatchHook(func(m string, rows, maxBatch int) {
		if m != mirror {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.batches = append(l.batches, struct{ rows, maxBatch int }{rows, maxBatch})
	})
	t.Cleanup(restore)
	return l
}

// under returns the batches made under max_batch_size maxBatch: how many,
// their rows, and the largest.
func (l *batchLog) under(maxBatch int) (n, rows, largest int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.batches {
		if b.maxBatch == maxBatch {
			n, rows, largest = n+1, rows+b.rows, max(largest, b.rows)
		}
	}
	return n, rows, largest
}

// TestAlterMirror changes max_batch_size on a running mirror: the batches
// after ALTER MIRROR are no larger than the new size, with nothing
// restarted by hand. RESET returns options to their defaults; a refused
// option, a bad value and an unknown option leave the stored options as
// they were; a missing mirror is 42704.
func TestAlterMirror(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	store := f.s.Store
	mustExec(t, f.src, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g`)
	mustExec(t, f.conn, `CREATE MIRROR am FROM src TO dst WITH TABLE MAPPING (public.t:public.t)`)
	f.waitStatus(t, "am", "RUNNING")
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	batches := watchBatches(t, "am")

	mustExec(t, f.conn, `ALTER MIRROR am SET (max_batch_size = 10, sync_interval = 5)`)
	m, err := store.GetMirror(ctx, "am")
	if err != nil {
		t.Fatal(err)
	}
	if m.Options["max_batch_size"] != "10" || m.Options["sync_interval"] != "5" {
		t.Fatalf("stored options after SET: %v", m.Options)
	}
	var event string
	if err := f.conn.QueryRow(ctx, `SELECT message FROM mirror_events WHERE mirror = 'am' AND kind = 'options'`).Scan(&event); err != nil {
		t.Fatal(err)
	}
	if want := "options set: max_batch_size 250000 -> 10, sync_interval 1 -> 5"; event != want {
		t.Errorf("event %q, want %q", event, want)
	}

	// The running flow follows the new size: one-row transactions until a
	// batch shows it (at once, in practice: ALTER MIRROR wakes the flow).
	for deadline, id := time.Now().Add(30*time.Second), 100; ; id++ {
		if n, _, _ := batches.under(10); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch made under max_batch_size = 10 within 30s of ALTER MIRROR")
		}
		mustExec(t, f.src, `INSERT INTO t VALUES ($1, 'w')`, id)
		time.Sleep(50 * time.Millisecond)
	}
	before, _, _ := batches.under(10)
	// 300 one-row transactions at once: without the new size they would be
	// one or two batches (a batch ends when the stream is idle).
	if _, err := f.src.PgConn().Exec(ctx, `DO $$ BEGIN FOR i IN 1000..1299 LOOP
		INSERT INTO t VALUES (i, 'burst'); COMMIT; END LOOP; END $$`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	waitEqual(t, f.src, f.dst, "t", "t", "id")
	n, rows, largest := batches.under(10)
	t.Logf("the burst: %d batches under max_batch_size = 10, largest %d rows", n-before, largest)
	if largest > 10 {
		t.Errorf("a batch of %d rows under max_batch_size = 10", largest)
	}
	if n-before < 30 || rows < 300 {
		t.Errorf("the burst of 300 transactions took %d batches (%d rows in all under the new size), want at least 30",
			n-before, rows)
	}

	mustExec(t, f.conn, `ALTER MIRROR am RESET (max_batch_size)`)
	if m, err = store.GetMirror(ctx, "am"); err != nil {
		t.Fatal(err)
	}
	if m.Options["max_batch_size"] != "250000" || m.Options["sync_interval"] != "5" {
		t.Fatalf("stored options after RESET (max_batch_size): %v", m.Options)
	}
	// The running flow follows RESET as it followed SET.
	for deadline, id := time.Now().Add(30*time.Second), 5000; ; id++ {
		if n, _, _ := batches.under(250000); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no batch made under the default max_batch_size within 30s of RESET")
		}
		mustExec(t, f.src, `INSERT INTO t VALUES ($1, 'after reset')`, id)
		time.Sleep(50 * time.Millisecond)
	}
	waitEqual(t, f.src, f.dst, "t", "t", "id")

	// Refused, bad and unknown options: nothing changes, no event.
	var events int
	countEvents := func() int {
		var n int
		if err := f.conn.QueryRow(ctx, `SELECT count(*) FROM mirror_events WHERE mirror = 'am' AND kind = 'options'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	events = countEvents()
	for _, tc := range []struct{ sql, code string }{
		{`ALTER MIRROR am SET (max_batch_size = 20, replication_slot_name = 'other')`, pgerrcode.CantChangeRuntimeParam},
		{`ALTER MIRROR am RESET (sync_interval, publication_name)`, pgerrcode.CantChangeRuntimeParam},
		{`ALTER MIRROR am SET (soft_delete_col_name = 'gone')`, pgerrcode.CantChangeRuntimeParam},
		{`ALTER MIRROR am SET (max_batch_size = 0)`, pgerrcode.InvalidParameterValue},
		{`ALTER MIRROR am SET (sync_interval = 2, max_batch = 5)`, pgerrcode.SyntaxError},
		{`ALTER MIRROR am RESET (nope)`, pgerrcode.SyntaxError},
		{`ALTER MIRROR nosuch SET (max_batch_size = 5)`, pgerrcode.UndefinedObject},
	} {
		_, err := f.conn.Exec(ctx, tc.sql)
		pe := wantError(t, err, tc.code)
		if pe.Position == 0 {
			t.Errorf("%s: error without a position: %s", tc.sql, pe.Message)
		}
		after, err := store.GetMirror(ctx, "am")
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(after.Options, m.Options) {
			t.Errorf("%s changed the stored options: %v, was %v", tc.sql, after.Options, m.Options)
		}
	}
	if n := countEvents(); n != events {
		t.Errorf("refused statements recorded %d options events", n-events)
	}
	mustExec(t, f.conn, `ALTER MIRROR IF EXISTS nosuch RESET (sync_interval)`)
}
