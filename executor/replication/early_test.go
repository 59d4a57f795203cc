package replication

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// openTx returns the events of a transaction sent before its commit (an
// open begin at lower bound at), with a change of tabA per id, ended by a
// commit at end, or by an abort when end is 0.
func openTx(at, end uint64, ids ...string) []connectors.Event {
	evs := tx(at, end, ids...)
	evs[0] = connectors.Event{Kind: connectors.EventBegin, Pos: lsnPos(at), Open: true}
	if end == 0 {
		evs[len(evs)-1] = connectors.Event{Kind: connectors.EventAbort}
	}
	return evs
}

// TestBatcherOpenTransaction: the batch before an open transaction is
// committed on its own first; the open one's rows go in as they come and
// commit at its end; one rolled back on the source is rolled back, and the
// batcher goes on.
func TestBatcherOpenTransaction(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	b.chunk, b.eager = 1, 1
	running(t, b, d.stream(f))

	// A small transaction, then an open one in the same read: the small
	// one commits first, alone.
	f <- append(tx(110, 120, "1"), openTx(125, 0, "x1", "x2")[:3]...)
	eventually(t, "the open transaction's rows added", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.open && len(d.pending) == 2
	})
	if c, _, _ := d.snapshot(); len(c) != 1 || c[0].lsn != 120 || c[0].String() != "a:1" {
		t.Fatalf("commits before the open transaction: %v", c)
	}
	// It rolls back: nothing of it commits, and nothing is acknowledged
	// beyond the small one.
	f <- []connectors.Event{{Kind: connectors.EventAbort}}
	f <- tx(130, 140, "2")
	f <- openTx(145, 160, "y1", "y2", "y3")
	eventually(t, "three commits", func() bool { c, _, _ := d.snapshot(); return len(c) == 3 })
	commits, acks, _ := d.snapshot()
	if got := commits[1].String() + "|" + commits[2].String(); got != "a:2|a:y1,a:y2,a:y3" || commits[2].lsn != 160 {
		t.Errorf("commits after the abort: %v", commits)
	}
	for _, a := range acks {
		if a > 120 && a < 140 {
			t.Errorf("acknowledged %d inside the rolled back transaction", a)
		}
	}
}

// TestBatcherOpenTransactionAbandoned: an open transaction on a
// stream that table resyncs follow abandons the stream (the flow starts
// it again, sending at commits), and a rollback the batcher cannot make
// alone does too.
func TestBatcherOpenTransactionAbandoned(t *testing.T) {
	t.Run("resyncs", func(t *testing.T) {
		d := &dest{}
		f := make(feed, 16)
		b := newTestBatcher(d.applier(), 100, 1000)
		b.rs = &resyncs{pos: map[connectors.TableName]connectors.Position{tabA: lsnPos(90)}}
		done := runUntilError(t, b, d.stream(f))
		f <- openTx(125, 160, "x1")
		if err := <-done; !errors.Is(err, connectors.ErrEarlyAbandoned) {
			t.Fatalf("run: %v, want ErrEarlyAbandoned", err)
		}
	})
	t.Run("abort outside", func(t *testing.T) {
		d := &dest{}
		f := make(feed, 16)
		b := newTestBatcher(d.applier(), 100, 1000)
		done := runUntilError(t, b, d.stream(f))
		f <- []connectors.Event{{Kind: connectors.EventAbort}}
		if err := <-done; !errors.Is(err, connectors.ErrEarlyAbandoned) {
			t.Fatalf("run: %v, want ErrEarlyAbandoned", err)
		}
	})
}

// TestBatcherRetriesEarly: a stream started without early sending only
// because of the wait starts again at the first idle moment after it.
func TestBatcherRetriesEarly(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	b.f.early = &earlyBackoff{offUntil: time.Now().Add(time.Hour)}
	b.lateOnly = true
	done := runUntilError(t, b, d.stream(f))
	f <- tx(110, 120, "1")
	eventually(t, "the commit", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })
	f <- []connectors.Event{{Kind: connectors.EventProgress, Pos: lsnPos(130)}}
	// The progress is acknowledged after the batcher looked at the wait.
	eventually(t, "the acknowledgement of 130", func() bool {
		_, acks, _ := d.snapshot()
		return len(acks) > 0 && acks[len(acks)-1] == 130
	})
	select {
	case err := <-done:
		t.Fatalf("run ended while the wait lasts: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	b.f.early.offUntil = time.Now()
	f <- []connectors.Event{{Kind: connectors.EventProgress, Pos: lsnPos(140)}}
	if err := <-done; !errors.Is(err, errRestart) {
		t.Fatalf("run: %v, want errRestart", err)
	}
}

// runUntilError runs b on s and returns a channel of what run returns.
func runUntilError(t *testing.T, b *batcher, s connectors.Stream) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- b.run(t.Context(), s) }()
	return done
}

// TestEarlyBackoff: each abandoned early stream doubles the wait, within
// its bounds; a committed open transaction forgets them.
func TestEarlyBackoff(t *testing.T) {
	var e earlyBackoff
	if !e.allowed() {
		t.Fatal("not allowed at first")
	}
	var waits []string
	for range 9 {
		waits = append(waits, e.abandoned().String())
	}
	if got := strings.Join(waits, " "); got != "1m0s 2m0s 4m0s 8m0s 16m0s 32m0s 1h0m0s 1h0m0s 1h0m0s" {
		t.Errorf("waits: %s", got)
	}
	if e.allowed() {
		t.Error("allowed while waiting")
	}
	e.committed()
	if e.abandoned() != earlyOffMin {
		t.Error("a commit did not forget the waits")
	}
	e.offUntil = time.Now().Add(-time.Second)
	if !e.allowed() {
		t.Error("not allowed after the wait")
	}
	var none *earlyBackoff
	if !none.allowed() || none.abandoned() != 0 {
		t.Error("a nil backoff must allow and keep nothing")
	}
}

// lateApplier is a fakeApplier with connectors.LateVersions: it records
// the version SetVersion gave, and when.
type lateApplier struct {
	*fakeApplier
	d        *dest
	versions []uint64 // SetVersion's, in order
	before   []int    // commits recorded when each came
}

func (a *lateApplier) SetVersion(v uint64) {
	a.d.mu.Lock()
	defer a.d.mu.Unlock()
	a.versions = append(a.versions, v)
	a.before = append(a.before, len(a.d.commits))
}

// TestBatcherLateVersions: into a destination that versions rows late
// (connectors.LateVersions), an open transaction's changes come without
// version, its commit gives them the commit's version (SetVersion) and
// commits the destination transaction at once, alone; a commit of an open
// transaction without a version is an error.
func TestBatcherLateVersions(t *testing.T) {
	d := &dest{}
	a := &lateApplier{fakeApplier: d.applier(), d: d}
	f := make(feed, 16)
	b := newTestBatcher(a, 100, 1000)
	b.chunk, b.eager = 1, 1
	running(t, b, d.stream(f))

	open := openTx(125, 160, "x1", "x2")
	open[len(open)-1].Version = 150
	f <- append(append(tx(110, 120, "1"), open...), tx(165, 170, "2")...)
	eventually(t, "three commits", func() bool { c, _, _ := d.snapshot(); return len(c) == 3 })
	commits, _, _ := d.snapshot()
	if got := commits[0].String() + "|" + commits[1].String() + "|" + commits[2].String(); got != "a:1|a:x1,a:x2|a:2" ||
		commits[1].lsn != 160 {
		t.Fatalf("commits: %v", commits)
	}
	d.mu.Lock()
	versions, before := a.versions, a.before
	var openVersions []uint64
	for _, cs := range d.added {
		for _, c := range cs {
			if strings.HasPrefix(string(c.New[0].Data), "x") {
				openVersions = append(openVersions, c.Version)
			}
		}
	}
	d.mu.Unlock()
	if len(versions) != 1 || versions[0] != 150 || before[0] != 1 {
		t.Fatalf("SetVersion: %v with %v commits before, want 150 once, after the first commit", versions, before)
	}
	if len(openVersions) != 2 || openVersions[0] != 0 || openVersions[1] != 0 {
		t.Fatalf("versions of the open transaction's changes: %v, want 0 (given at its commit)", openVersions)
	}

	d2 := &dest{}
	b2 := newTestBatcher(&lateApplier{fakeApplier: d2.applier(), d: d2}, 100, 1000)
	f2 := make(feed, 16)
	done := runUntilError(t, b2, d2.stream(f2))
	f2 <- openTx(125, 160, "y1")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "carries no version") {
		t.Fatalf("run: %v, want an error for the commit without a version", err)
	}
}
