package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Unit tests of the CDC batcher against fakes of connectors.Stream and
// connectors.Applier: the order of applying, committing and acknowledging.
// The end-to-end tests (mirror_test.go, crash_test.go) run it on servers.

// fakeStream is a connectors.Stream of functions; a nil one does nothing.
type fakeStream struct {
	read      func(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error)
	ack       func(lsn uint64)
	keepAlive func(ctx context.Context) error
	heartbeat func(ctx context.Context) error
}

func (s *fakeStream) Read(ctx context.Context, buf []connectors.Event, max int, wait time.Duration) ([]connectors.Event, error) {
	return s.read(ctx, buf, max, wait)
}

func (s *fakeStream) Ack(pos connectors.Position) {
	if s.ack != nil {
		s.ack(posLSN(pos))
	}
}

func (s *fakeStream) KeepAlive(ctx context.Context) error {
	if s.keepAlive != nil {
		return s.keepAlive(ctx)
	}
	return nil
}

func (s *fakeStream) Heartbeat(ctx context.Context) error {
	if s.heartbeat != nil {
		return s.heartbeat(ctx)
	}
	return nil
}

func (s *fakeStream) Close(context.Context) error { return nil }

// fakeApplier is a connectors.Applier of functions.
type fakeApplier struct {
	begin     func(ctx context.Context) (uint64, error)
	add       func(ctx context.Context, changes ...[]connectors.Change) error
	commit    func(ctx context.Context, lsn uint64) (map[connectors.TableName]connectors.TableCounts, error)
	rollback  func(ctx context.Context) error
	inTx      func() bool
	setTables func(tables []connectors.DestTable)
}

func (a *fakeApplier) Begin(ctx context.Context) (connectors.Position, error) {
	lsn, err := a.begin(ctx)
	return lsnPos(lsn), err
}
func (a *fakeApplier) Add(ctx context.Context, changes ...[]connectors.Change) error {
	return a.add(ctx, changes...)
}
func (a *fakeApplier) Commit(ctx context.Context, end connectors.Position) (map[connectors.TableName]connectors.TableCounts, error) {
	return a.commit(ctx, posLSN(end))
}
func (a *fakeApplier) Rollback(ctx context.Context) error { return a.rollback(ctx) }
func (a *fakeApplier) InTx() bool                         { return a.inTx() }
func (a *fakeApplier) SetTables(tables []connectors.DestTable) {
	if a.setTables != nil {
		a.setTables(tables)
	}
}

// fakeTableCommitter adds connectors.TablePositionCommitter to a fakeApplier.
type fakeTableCommitter struct {
	*fakeApplier
	commitTables func(ctx context.Context, lsn uint64, put []connectors.TableState, drop []connectors.TableName) (map[connectors.TableName]connectors.TableCounts, error)
}

func (a *fakeTableCommitter) CommitTables(ctx context.Context, end connectors.Position, put []connectors.TableState, drop []connectors.TableName) (map[connectors.TableName]connectors.TableCounts, error) {
	return a.commitTables(ctx, posLSN(end), put, drop)
}

// fakeCatalog is the batcher's catalog.
type fakeCatalog struct {
	recordSync func(ctx context.Context, name string, lsn uint64, at time.Time, rows int64, counts map[string]catalog.TableCounts) error
	getMirror  func(ctx context.Context, name string) (catalog.Mirror, error)
}

func (c *fakeCatalog) RecordSync(ctx context.Context, name string, end connectors.Position, _ string, at time.Time, rows int64, counts map[string]catalog.TableCounts) error {
	if c.recordSync != nil {
		return c.recordSync(ctx, name, posLSN(end), at, rows, counts)
	}
	return nil
}

// The fakes speak LSNs, as numbers; the batcher Positions, which a Postgres
// source makes from LSNs as 16 hexadecimal digits (the fakes' stand-in
// for postgres.LSNPosition, which this package does not import).
func lsnPos(lsn uint64) connectors.Position {
	if lsn == 0 {
		return ""
	}
	return connectors.Position(fmt.Sprintf("%016X", lsn))
}

func posLSN(p connectors.Position) uint64 {
	if p == "" {
		return 0
	}
	lsn, err := strconv.ParseUint(string(p), 16, 64)
	if err != nil {
		panic(err)
	}
	return lsn
}

func (c *fakeCatalog) GetMirror(ctx context.Context, name string) (catalog.Mirror, error) {
	if c.getMirror != nil {
		return c.getMirror(ctx, name)
	}
	return catalog.Mirror{Name: name}, nil
}

// dest is what a fake destination holds, behind a mutex: the test reads it
// while the batcher runs.
type dest struct {
	mu       sync.Mutex
	recorded uint64                // the committed position
	open     bool                  // a transaction is open
	pending  []connectors.Change   // added in the open transaction
	commits  []commitRec           // committed batches, in order
	added    [][]connectors.Change // every Add, in order
	acks     []uint64              // positions acknowledged to the stream
	beats    int                   // heartbeats
	// gate, if set, is waited on by Commit before it commits.
	gate chan struct{}
}

type commitRec struct {
	lsn     uint64
	changes []string            // changeID of each change
	rows    []connectors.Change // the changes
}

func (d *dest) snapshot() (commits []commitRec, acks []uint64, beats int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.commits), slices.Clone(d.acks), d.beats
}

// applier returns a fake applier that applies to d.
func (d *dest) applier() *fakeApplier {
	return &fakeApplier{
		begin: func(context.Context) (uint64, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.open = true
			return d.recorded, nil
		},
		add: func(_ context.Context, changes ...[]connectors.Change) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			if !d.open {
				return errors.New("add without a transaction")
			}
			var all []connectors.Change
			for _, c := range changes {
				all = append(all, c...)
			}
			d.pending = append(d.pending, all...)
			d.added = append(d.added, all)
			return nil
		},
		commit: func(ctx context.Context, lsn uint64) (map[connectors.TableName]connectors.TableCounts, error) {
			return d.commitAt(ctx, lsn, false)
		},
		rollback: func(context.Context) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.open, d.pending = false, nil
			return nil
		},
		inTx: func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return d.open
		},
	}
}

// commitAt commits the open transaction at lsn (always when force).
func (d *dest) commitAt(ctx context.Context, lsn uint64, force bool) (map[connectors.TableName]connectors.TableCounts, error) {
	d.mu.Lock()
	gate := d.gate
	d.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.open {
		return nil, errors.New("commit without a transaction")
	}
	d.open = false
	if lsn <= d.recorded && !force {
		d.pending = nil
		return map[connectors.TableName]connectors.TableCounts{}, nil
	}
	rec := commitRec{lsn: lsn}
	counts := map[connectors.TableName]connectors.TableCounts{}
	for _, c := range d.pending {
		rec.changes = append(rec.changes, changeID(c))
		rec.rows = append(rec.rows, c)
		tc := counts[c.Table]
		tc.Inserts++
		counts[c.Table] = tc
	}
	d.commits = append(d.commits, rec)
	d.pending = nil
	d.recorded = max(d.recorded, lsn)
	return counts, nil
}

func changeID(c connectors.Change) string {
	return c.Table.Name + ":" + string(c.New[0].Data)
}

// feed is a scripted source: the chunks of events sent on it are what
// Read returns, one chunk per call; Read is idle for wait when none comes.
type feed chan []connectors.Event

func (d *dest) stream(f feed) *fakeStream {
	return &fakeStream{
		read: func(ctx context.Context, buf []connectors.Event, _ int, wait time.Duration) ([]connectors.Event, error) {
			select {
			case evs := <-f:
				return append(buf, evs...), nil
			case <-time.After(wait):
				return buf, nil
			case <-ctx.Done():
				return buf, ctx.Err()
			}
		},
		ack: func(lsn uint64) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if n := len(d.acks); n == 0 || d.acks[n-1] != lsn {
				d.acks = append(d.acks, lsn)
			}
		},
		heartbeat: func(context.Context) error {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.beats++
			return nil
		},
	}
}

var tabA = connectors.TableName{Schema: "public", Name: "a"}

// tx returns the events of a source transaction whose commit record
// starts at begin and which ends at end, with a change of tabA per id.
func tx(begin, end uint64, ids ...string) []connectors.Event {
	evs := []connectors.Event{{Kind: connectors.EventBegin, Pos: lsnPos(begin), Version: begin}}
	for _, id := range ids {
		evs = append(evs, connectors.Event{Kind: connectors.EventChange, Table: tabA, Change: connectors.Change{
			Kind: connectors.Insert, Table: tabA, New: []connectors.Value{{Kind: connectors.Binary, Data: []byte(id)}}}})
	}
	return append(evs, connectors.Event{Kind: connectors.EventCommit, Pos: lsnPos(end), CommitTime: time.Unix(int64(end), 0)})
}

// newTestBatcher returns a batcher at applied, with batches of up to
// maxBatch rows and a sync interval of an hour (idle flushes only).
func newTestBatcher(a connectors.Applier, applied uint64, maxBatch int) *batcher {
	f := &flow{m: catalog.Mirror{Name: "m"}, log: slog.New(slog.DiscardHandler), progressDone: true}
	f.opt.MaxBatchSize, f.opt.SyncInterval = maxBatch, 3600
	b := &batcher{f: f, applier: a, store: &fakeCatalog{}, applied: lsnPos(applied),
		idleFlush: 20 * time.Millisecond, heartbeatEvery: time.Hour}
	b.useOptions(f.opt)
	b.setAcked(lsnPos(applied))
	return b
}

// running runs b on s until the test ends; it returns what run returned.
func running(t *testing.T, b *batcher, s connectors.Stream) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	return done
}

// eventually waits up to 10s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c commitRec) String() string {
	return strings.Join(c.changes, ",")
}

func TestBatcherCommitsWholeTransactions(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 3)
	running(t, b, d.stream(f))

	// Two transactions in one read: the second reaches max_batch_size (3),
	// and the batch ends with it, both in one destination transaction.
	f <- append(tx(110, 120, "1", "2"), tx(130, 140, "3", "4")...)
	// A transaction larger than a batch is not split.
	f <- tx(150, 160, "5", "6", "7", "8", "9")
	// One below max_batch_size: applied when the stream is idle.
	f <- tx(170, 180, "10")
	eventually(t, "three batches", func() bool { c, _, _ := d.snapshot(); return len(c) == 3 })

	commits, _, _ := d.snapshot()
	want := []commitRec{
		{lsn: 140, changes: []string{"a:1", "a:2", "a:3", "a:4"}},
		{lsn: 160, changes: []string{"a:5", "a:6", "a:7", "a:8", "a:9"}},
		{lsn: 180, changes: []string{"a:10"}},
	}
	for i, w := range want {
		if commits[i].lsn != w.lsn || commits[i].String() != w.String() {
			t.Errorf("batch %d: committed %s at %d, want %s at %d", i, commits[i], commits[i].lsn, w, w.lsn)
		}
	}
}

func TestBatcherAcknowledgesOnlyCommitted(t *testing.T) {
	d := &dest{gate: make(chan struct{})}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	running(t, b, d.stream(f))

	f <- tx(110, 120, "1", "2")
	// The batch is complete and its commit waits at the gate: the stream is
	// told nothing beyond where it started meanwhile, also when the reader
	// reports on its own (keepalive ticks every second).
	eventually(t, "the commit to start", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.open && len(d.pending) == 2
	})
	time.Sleep(1200 * time.Millisecond)
	if _, acks, _ := d.snapshot(); slices.ContainsFunc(acks, func(a uint64) bool { return a > 100 }) {
		t.Fatalf("acknowledged %v before the batch ending at 120 committed", acks)
	}
	close(d.gate)
	eventually(t, "the acknowledgement of 120", func() bool {
		_, acks, _ := d.snapshot()
		return len(acks) > 0 && acks[len(acks)-1] == 120
	})
	commits, _, _ := d.snapshot()
	if len(commits) != 1 || commits[0].lsn != 120 {
		t.Fatalf("commits: %v", commits)
	}
}

func TestBatcherProgressAcknowledgedWhenNothingPending(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	running(t, b, d.stream(f))

	// A keepalive beyond the applied position with no change pending: the
	// stream may move on, with nothing committed.
	f <- []connectors.Event{{Kind: connectors.EventProgress, Pos: lsnPos(150)}}
	eventually(t, "the acknowledgement of 150", func() bool {
		_, acks, _ := d.snapshot()
		return len(acks) > 0 && acks[len(acks)-1] == 150
	})
	if commits, _, _ := d.snapshot(); len(commits) != 0 {
		t.Fatalf("committed %v for a keepalive", commits)
	}
}

func TestBatcherHeartbeat(t *testing.T) {
	start := func(t *testing.T, every time.Duration) (*dest, feed) {
		d, f := &dest{}, make(feed, 16)
		b := newTestBatcher(d.applier(), 100, 1000)
		b.heartbeatEvery = every
		running(t, b, d.stream(f))
		return d, f
	}
	t.Run("idle", func(t *testing.T) {
		d, _ := start(t, 50*time.Millisecond)
		eventually(t, "two heartbeats", func() bool { _, _, beats := d.snapshot(); return beats >= 2 })
	})
	t.Run("busy", func(t *testing.T) {
		d, f := start(t, 300*time.Millisecond)
		// Events more often than the idle flush: the stream is never idle.
		stop := time.Now().Add(time.Second)
		for lsn := uint64(200); time.Now().Before(stop); lsn += 20 {
			f <- []connectors.Event{{Kind: connectors.EventProgress, Pos: lsnPos(lsn)}}
			time.Sleep(5 * time.Millisecond)
		}
		if _, _, beats := d.snapshot(); beats != 0 {
			t.Fatalf("%d heartbeat(s) on a busy stream", beats)
		}
	})
}

func TestBatcherSkipsTransactionAppliedBeforeRestart(t *testing.T) {
	d := &dest{recorded: 200}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 200, 1000)
	b.chunk, b.eager = 1, 1 // add every row at once when it may be added
	running(t, b, d.stream(f))

	// After a restart the stream replays from before the applied position:
	// a transaction whose commit record starts before it (150) is in the
	// destination; its changes are dropped as they come, and its commit
	// (190) confirms it. The next one (begin 210) is not applied yet.
	f <- tx(150, 190, "old1", "old2")
	f <- tx(210, 220, "new")
	eventually(t, "the batch ending at 220", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })

	commits, _, _ := d.snapshot()
	if commits[0].lsn != 220 || commits[0].String() != "a:new" {
		t.Fatalf("committed %s at %d, want a:new at 220", commits[0], commits[0].lsn)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, add := range d.added {
		for _, c := range add {
			if strings.HasPrefix(changeID(c), "a:old") {
				t.Fatalf("the replayed transaction's change %s was added", changeID(c))
			}
		}
	}
}

func TestBatcherAddsBeforeCommit(t *testing.T) {
	d := &dest{}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 100, 1000)
	b.chunk, b.eager = 2, 2
	running(t, b, d.stream(f))

	// A transaction known to commit after the applied position: its rows go
	// to the destination transaction before its commit arrives.
	f <- tx(110, 120, "1", "2", "3")[:3] // begin and two changes
	eventually(t, "rows added before the commit", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.pending) == 2
	})
	if commits, acks, _ := d.snapshot(); len(commits) != 0 || slices.ContainsFunc(acks, func(a uint64) bool { return a > 100 }) {
		t.Fatalf("committed %v, acknowledged %v in the middle of a transaction", commits, acks)
	}
	f <- tx(110, 120, "1", "2", "3")[3:]
	eventually(t, "the batch ending at 120", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })
	if commits, _, _ := d.snapshot(); commits[0].String() != "a:1,a:2,a:3" {
		t.Fatalf("committed %s", commits[0])
	}
}

func TestBatcherTablePositions(t *testing.T) {
	newResyncing := func() *resyncs {
		rs := newResyncs()
		rs.pos[tabA] = lsnPos(100) // copied as of 100; the mirror is at 300
		rs.strategy[tabA] = StrategySwap
		return rs
	}
	t.Run("committed with the batch", func(t *testing.T) {
		d := &dest{recorded: 300}
		type call struct {
			lsn  uint64
			put  []connectors.TableState
			drop []connectors.TableName
		}
		var mu sync.Mutex
		var calls []call
		a := &fakeTableCommitter{fakeApplier: d.applier()}
		a.commitTables = func(ctx context.Context, lsn uint64, put []connectors.TableState, drop []connectors.TableName) (map[connectors.TableName]connectors.TableCounts, error) {
			mu.Lock()
			calls = append(calls, call{lsn, put, drop})
			mu.Unlock()
			return d.commitAt(ctx, lsn, true)
		}
		f := make(feed, 16)
		b := newTestBatcher(a, 300, 1000)
		b.rs = newResyncing()
		b.acked = ""
		b.ack.Store(nil)
		b.setAcked(lsnPos(100)) // the stream starts at the lowest position
		running(t, b, d.stream(f))

		// Catching up: the table's change committed after its own position
		// is applied, though the mirror has it; its position moves on in
		// the same destination transaction.
		f <- tx(150, 160, "x")
		eventually(t, "the batch ending at 160", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })
		mu.Lock()
		defer mu.Unlock()
		want := connectors.TableState{Table: tabA, Stage: connectors.StageCatchup, Strategy: StrategySwap, Position: lsnPos(160)}
		if len(calls) != 1 || calls[0].lsn != 160 || len(calls[0].put) != 1 || calls[0].put[0].Table != want.Table ||
			calls[0].put[0].Stage != want.Stage || calls[0].put[0].Position != want.Position || len(calls[0].drop) != 0 {
			t.Fatalf("CommitTables calls %+v, want one at 160 putting %+v", calls, want)
		}
		if commits, acks, _ := d.snapshot(); commits[0].String() != "a:x" || slices.ContainsFunc(acks, func(a uint64) bool { return a > 160 }) {
			t.Fatalf("committed %s, acknowledged %v: want a:x, nothing beyond the table's position", commits[0], acks)
		}
	})
	t.Run("destination without the ability", func(t *testing.T) {
		d := &dest{recorded: 300}
		f := make(feed, 16)
		b := newTestBatcher(d.applier(), 300, 1000)
		b.rs = newResyncing()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		f <- tx(150, 160, "x")
		err := b.run(ctx, d.stream(f))
		if err == nil || !strings.Contains(err.Error(), "table resyncs are not supported on this destination") {
			t.Fatalf("run: %v", err)
		}
		if commits, _, _ := d.snapshot(); len(commits) != 0 {
			t.Fatalf("committed %v", commits)
		}
	})
}

func TestBatcherNewColumns(t *testing.T) {
	schema := &connectors.TableSchema{Name: tabA, Columns: []connectors.Column{{Name: "id"}}, PrimaryKey: []string{"id"}}
	newCols := []connectors.Column{{Name: "extra"}}
	change := func(id string, vals int) connectors.Event {
		c := connectors.Change{Kind: connectors.Insert, Table: tabA, New: []connectors.Value{{Kind: connectors.Binary, Data: []byte(id)}}}
		for range vals - 1 {
			c.New = append(c.New, connectors.Value{Kind: connectors.Binary, Data: []byte("e")})
		}
		return connectors.Event{Kind: connectors.EventChange, Table: tabA, Change: c}
	}
	t.Run("followed", func(t *testing.T) {
		d := &dest{}
		a := d.applier()
		var mu sync.Mutex
		var set [][]connectors.DestTable
		a.setTables = func(tables []connectors.DestTable) {
			mu.Lock()
			defer mu.Unlock()
			set = append(set, slices.Clone(tables))
		}
		f := make(feed, 16)
		b := newTestBatcher(a, 100, 1000)
		b.chunk, b.eager = 1, 1
		b.dests = []connectors.DestTable{{Source: tabA, Dest: tabA, Schema: schema}}
		var added []connectors.Column
		b.addColumnsTo = func(_ context.Context, dt connectors.DestTable, cols []connectors.Column) (*connectors.TableSchema, error) {
			added = append(added, cols...)
			ts := *dt.Schema
			ts.Columns = append(slices.Clip(ts.Columns), cols...)
			return &ts, nil
		}
		running(t, b, d.stream(f))

		// A row of the transaction goes to the destination transaction, then
		// the table gains a column: the destination transaction starts over
		// and the row is kept with the new column Unchanged (the back-filled
		// value stays).
		f <- []connectors.Event{{Kind: connectors.EventBegin, Pos: lsnPos(110), Version: 110}, change("1", 1)}
		eventually(t, "the first row added", func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.pending) == 1
		})
		f <- []connectors.Event{{Kind: connectors.EventNewColumns, Table: tabA, NewColumns: newCols}, change("2", 2),
			{Kind: connectors.EventCommit, Pos: lsnPos(120)}}
		eventually(t, "the batch ending at 120", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })

		commits, _, _ := d.snapshot()
		if commits[0].String() != "a:1,a:2" {
			t.Fatalf("committed %s, want a:1,a:2", commits[0])
		}
		if first := commits[0].rows[0].New; len(first) != 2 || first[1].Kind != connectors.Unchanged {
			t.Fatalf("the row received before the new column has values %+v, want the new one Unchanged", first)
		}
		if len(added) != 1 || added[0].Name != "extra" {
			t.Fatalf("columns added: %+v", added)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(set) != 1 || len(set[0]) != 1 || len(set[0][0].Schema.Columns) != 2 {
			t.Fatalf("SetTables calls: %+v, want one with the table's two columns", set)
		}
	})
	t.Run("not followed", func(t *testing.T) {
		d := &dest{}
		f := make(feed, 16)
		b := newTestBatcher(d.applier(), 100, 1000)
		b.dests = []connectors.DestTable{{Source: tabA, Dest: tabA, Schema: schema}}
		f <- []connectors.Event{{Kind: connectors.EventBegin, Pos: lsnPos(110), Version: 110},
			{Kind: connectors.EventNewColumns, Table: tabA, NewColumns: newCols}}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := b.run(ctx, d.stream(f))
		if err == nil || !strings.Contains(err.Error(), "public.a gained 1 column(s): this destination does not follow source schema changes yet") {
			t.Fatalf("run: %v", err)
		}
	})
}

// TestBatcherSkippedMustBeApplied: a transaction dropped as applied before
// (its commit starts before the applied position) whose commit ends beyond
// it cannot be: the batcher stops rather than lose it.
func TestBatcherSkippedMustBeApplied(t *testing.T) {
	d := &dest{recorded: 200}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 200, 1000)
	f <- tx(150, 250, "lost")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := b.run(ctx, d.stream(f))
	if err == nil || !strings.Contains(err.Error(), "was taken for applied before") {
		t.Fatalf("run: %v", err)
	}
	if commits, _, _ := d.snapshot(); len(commits) != 0 {
		t.Fatalf("committed %v", commits)
	}
}

// bigTx returns the events of a transaction of n changes of tabA, ids
// "0" to n-1.
func bigTx(begin, end uint64, n int) []connectors.Event {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return tx(begin, end, ids...)
}

// TestBatcherForgetsAdded: the batcher keeps no change it added to the
// destination transaction, so a transaction many times larger than what
// it holds streams through, whole and in order, in one destination
// transaction.
func TestBatcherForgetsAdded(t *testing.T) {
	d := &dest{}
	a := d.applier()
	f := make(feed, 64)
	b := newTestBatcher(a, 100, 1<<20)
	b.chunk, b.eager = 1000, 1000
	held := 0 // the most changes the batcher held when adding
	add := a.add
	a.add = func(ctx context.Context, changes ...[]connectors.Change) error {
		held = max(held, b.changes.n-b.changes.first()) // on the batcher's goroutine
		return add(ctx, changes...)
	}
	running(t, b, d.stream(f))
	const n = 10 * segSize
	evs := bigTx(110, 120, n)
	for len(evs) > 0 {
		k := min(len(evs), 500)
		f <- evs[:k]
		evs = evs[k:]
	}
	eventually(t, "the batch ending at 120", func() bool { c, _, _ := d.snapshot(); return len(c) == 1 })
	commits, _, _ := d.snapshot()
	if len(commits[0].changes) != n {
		t.Fatalf("committed %d changes, want %d", len(commits[0].changes), n)
	}
	for i, id := range commits[0].changes {
		if id != "a:"+strconv.Itoa(i) {
			t.Fatalf("change %d committed is %s", i, id)
		}
	}
	if held > segSize+b.chunk {
		t.Errorf("the batcher held %d changes at once, want at most %d", held, segSize+b.chunk)
	}
}

// TestBatcherNewColumnsRestart: columns added in the middle of a
// transaction whose first rows were added and forgotten: the batcher rolls
// the destination transaction back and restarts the stream from the
// applied position (the source sends the transaction again).
func TestBatcherNewColumnsRestart(t *testing.T) {
	schema := &connectors.TableSchema{Name: tabA, Columns: []connectors.Column{{Name: "id"}}, PrimaryKey: []string{"id"}}
	d := &dest{}
	f := make(feed, 64)
	b := newTestBatcher(d.applier(), 100, 1<<20)
	b.chunk, b.eager = 100, 100
	b.dests = []connectors.DestTable{{Source: tabA, Dest: tabA, Schema: schema}}
	b.addColumnsTo = func(_ context.Context, dt connectors.DestTable, cols []connectors.Column) (*connectors.TableSchema, error) {
		t.Error("columns added before the restart")
		return dt.Schema, nil
	}
	evs := bigTx(110, 120, 2*segSize)
	f <- evs[:len(evs)-1]
	f <- []connectors.Event{{Kind: connectors.EventNewColumns, Table: tabA, NewColumns: []connectors.Column{{Name: "extra"}}}}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := b.run(ctx, d.stream(f)); !errors.Is(err, errRestart) {
		t.Fatalf("run: %v, want errRestart", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.open || len(d.commits) != 0 {
		t.Fatalf("open %v, commits %v: want the destination transaction rolled back", d.open, d.commits)
	}
}
