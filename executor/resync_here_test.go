package executor_test

import (
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/executor"
)

// TestResyncTableSwapOnTheRunningStream resyncs a table with swap while
// the mirror streams: the copy starts on the running stream (the slot's
// WAL sender is the one from before the request), the other table's
// changes arrive while the copy is held half-way, and the resynced table
// ends with every change made during its copy. A truncate resync after
// it still converges (it restarts the stream: its table's changes are
// held from the restart on).
func TestResyncTableSwapOnTheRunningStream(t *testing.T) {
	f := newMirrorFixture(t)
	ctx := testCtx(t)
	mustExec(t, f.src, `CREATE TABLE big (id int PRIMARY KEY, v text); CREATE TABLE side (id int PRIMARY KEY, v text);
		INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	mustExec(t, f.conn, "CREATE MIRROR hs FROM src TO dst WITH TABLE MAPPING (big:big, side:side)")
	f.waitStatus(t, "hs", "RUNNING")
	waitEqual(t, f.src, f.dst, "big", "big", "id")
	walSender := func() int {
		t.Helper()
		var pid *int
		if err := f.src.QueryRow(ctx, `SELECT active_pid FROM pg_replication_slots WHERE slot_name = 'sluice_hs'`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if pid == nil {
			return 0
		}
		return *pid
	}
	// The stream is up (a change went through it) and stays up.
	mustExec(t, f.src, "INSERT INTO side VALUES (0, 'before')")
	waitEqual(t, f.src, f.dst, "side", "side", "id")
	before := walSender()
	if before == 0 {
		t.Fatal("no WAL sender streams the mirror")
	}

	reached, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	restore := executor.SetCopyRowHook(func(m string, rows int64) {
		if m == "hs" && rows == 5000 {
			once.Do(func() { close(reached) })
			<-release
		}
	})
	defer restore()
	mustExec(t, f.conn, "RESYNC TABLE hs.big WITH (strategy = 'swap')")
	select {
	case <-reached:
	case <-time.After(60 * time.Second):
		t.Fatal("the copy did not start")
	}
	if now := walSender(); now != before {
		t.Errorf("the WAL sender is %d, was %d before the request: the stream restarted to start the copy", now, before)
	}
	mustExec(t, f.src, `INSERT INTO side VALUES (1, 'during'); UPDATE big SET v = 'changed during' WHERE id % 1000 = 0;
		DELETE FROM big WHERE id > 19990; INSERT INTO big VALUES (30000, 'new during')`)
	waitEqual(t, f.src, f.dst, "side", "side", "id")
	close(release)
	f.waitResync(t, "hs", "public.big", "done")
	mustExec(t, f.src, `UPDATE big SET v = 'after' WHERE id = 1; INSERT INTO side VALUES (2, 'after')`)
	waitEqual(t, f.src, f.dst, "big", "big", "id")
	waitEqual(t, f.src, f.dst, "side", "side", "id")

	mustExec(t, f.conn, "RESYNC TABLE hs.big WITH (strategy = 'truncate')")
	mustExec(t, f.src, `UPDATE big SET v = 'during truncate' WHERE id % 777 = 0`)
	f.waitResync(t, "hs", "public.big", "done")
	waitEqual(t, f.src, f.dst, "big", "big", "id")
}
