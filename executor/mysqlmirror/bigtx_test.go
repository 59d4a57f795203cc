package mysqlmirror_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// heapWatch samples the process's live heap (the Sluice server of
// StartSluice runs in the test process: what a collection leaves) until
// stopped, keeping the highest.
type heapWatch struct {
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func watchHeap() *heapWatch {
	h := &heapWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		var ms runtime.MemStats
		for {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > h.peak.Load() {
				h.peak.Store(ms.HeapAlloc)
			}
			select {
			case <-h.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return h
}

func (h *heapWatch) finish() uint64 {
	close(h.stop)
	<-h.done
	return h.peak.Load()
}

// TestLargeTransaction streams one MariaDB transaction of 300,000 row
// changes (200,000 inserts, then 100,000 updates) into Postgres. The
// stream reads a bounded number of events ahead and the batcher forgets
// changes it has added, so the server's heap stays far below the
// transaction's size as decoded events (the peak is logged; the bound is
// loose: the rows alone are over 80 MB as text, several times that as
// events; alone, the peak is 45-55 MB with the race detector).
//
// Not parallel: the heap measured is the test process's, which the
// package's parallel tests' servers share; run beside them the peak was
// 268 MB once (CI), theirs and not this stream's. Go runs a package's
// serial tests before it resumes the parallel ones, so this one runs
// alone.
func TestLargeTransaction(t *testing.T) {
	f := newFixture(t)
	my := myConn(t, f.db)
	myExec(t, my, "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL, pad varchar(300))",
		"INSERT INTO big VALUES (0, 0, 'before')")
	mustExec(t, f.conn, fmt.Sprintf(`CREATE MIRROR big FROM my TO dst WITH TABLE MAPPING (%s.big:big)`, f.db))
	waitStatus(t, f.conn, "big", "RUNNING")
	cols := []col{text("id"), text("v"), text("pad")}
	waitSamePG(t, f.conn, f.dst, my, "big", "big", "id", cols)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	h := watchHeap()
	myExec(t, my, "BEGIN",
		"INSERT INTO big SELECT seq, seq, REPEAT(CHAR(65 + seq % 26), 280) FROM seq_1_to_200000",
		"UPDATE big SET v = v + 1, pad = CONCAT('u', pad) WHERE id % 2 = 0",
		"COMMIT")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var n int
		if err := f.dst.QueryRow(testCtx(t), "SELECT count(*) FROM big").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 200_001 {
			break
		}
		if n > 1 {
			t.Fatalf("the destination shows %d rows of an uncommitted-looking transaction: it must apply it whole", n)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transaction has not arrived:\n%s", mirrorState(f.conn))
		}
		time.Sleep(100 * time.Millisecond)
	}
	peak := h.finish()
	growth := int64(peak) - int64(base)
	t.Logf("live heap: %d MB before, peak %d MB during the transaction", base>>20, peak>>20)
	waitSamePG(t, f.conn, f.dst, my, "big", "big", "id", cols)
	const limit = 150 << 20
	if growth > limit {
		t.Errorf("the heap grew by %d MB during a transaction of 300,000 changes (limit %d MB): the stream or the batcher holds it", growth>>20, limit>>20)
	}
	var synced int64
	if err := f.conn.QueryRow(testCtx(t), "SELECT rows_synced FROM mirrors WHERE name = 'big'").Scan(&synced); err != nil || synced < 300_000 {
		t.Errorf("rows_synced %d (%v), want at least 300000", synced, err)
	}
}
