package replication

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Unit tests of held tables (held.go) in the batcher, with the fakes of
// batcher_test.go. The end-to-end tests are executor/table_hold_test.go.

var tabB = connectors.TableName{Schema: "public", Name: "b"}

// txOf returns the events of a source transaction whose commit record
// starts at begin and which ends at end, with one insert per "table:id"
// (table a or b).
func txOf(begin, end uint64, rows ...string) []connectors.Event {
	evs := []connectors.Event{{Kind: connectors.EventBegin, Pos: lsnPos(begin), Version: begin}}
	for _, r := range rows {
		table, id, _ := strings.Cut(r, ":")
		t := connectors.TableName{Schema: "public", Name: table}
		evs = append(evs, connectors.Event{Kind: connectors.EventChange, Table: t, Change: connectors.Change{
			Kind: connectors.Insert, Table: t, New: []connectors.Value{{Kind: connectors.Binary, Data: []byte(id)}}}})
	}
	return append(evs, connectors.Event{Kind: connectors.EventCommit, Pos: lsnPos(end), CommitTime: time.Unix(int64(end), 0)})
}

func TestResyncsHeld(t *testing.T) {
	rs := newResyncs()
	rs.held[tabA] = lsnPos(100)
	if rs.wanted(tabA, lsnPos(400), lsnPos(300)) {
		t.Error("a held table's change is wanted")
	}
	if !rs.wanted(tabB, lsnPos(300), lsnPos(300)) || rs.wanted(tabB, lsnPos(200), lsnPos(300)) {
		t.Error("another table's changes: want those from the applied position on")
	}
	if got := rs.ackLimit(); got != lsnPos(100) {
		t.Errorf("ackLimit %s, want the held position", got)
	}
	rs.pos[tabB] = lsnPos(50)
	if got := rs.ackLimit(); got != lsnPos(50) {
		t.Errorf("ackLimit %s, want the lowest of held and catching up", got)
	}
	if !rs.active() || rs.catchingUp() != true {
		t.Error("active and catching up")
	}
	rs.strategy[tabB] = StrategySwap
	if rs.holdable(tabB) {
		t.Error("a table under a swap resync is holdable")
	}
	rs.strategy[tabB] = connectors.Resumed
	if !rs.holdable(tabB) || !rs.holdable(connectors.TableName{Schema: "public", Name: "c"}) {
		t.Error("a resumed table catching up, or a streaming one, is not holdable")
	}
	var none *resyncs
	if none.holdable(tabA) || none.heldTables()[tabA] {
		t.Error("a nil resyncs holds")
	}
}

func TestBatcherHeldTable(t *testing.T) {
	d := &dest{recorded: 300}
	f := make(feed, 16)
	b := newTestBatcher(d.applier(), 300, 1000)
	b.rs = newResyncs()
	b.rs.held[tabA] = lsnPos(100) // held since 100; the mirror is at 300
	b.acked = ""
	b.ack.Store(nil)
	b.setAcked(lsnPos(100)) // the stream starts at the lowest position
	running(t, b, d.stream(f))

	f <- txOf(150, 160, "a:old", "b:old") // before the mirror's position: the destination has b's
	f <- txOf(310, 320, "a:1", "b:1")
	f <- txOf(330, 340, "a:2")
	f <- txOf(350, 360, "b:2")
	eventually(t, "b's changes", func() bool {
		c, _, _ := d.snapshot()
		n := 0
		for _, r := range c {
			n += len(r.changes)
		}
		return n == 2
	})
	commits, acks, _ := d.snapshot()
	var got []string
	for _, c := range commits {
		got = append(got, c.changes...)
	}
	if !slices.Equal(got, []string{"b:1", "b:2"}) {
		t.Errorf("applied %v, want b's changes after the mirror's position only", got)
	}
	if slices.ContainsFunc(acks, func(a uint64) bool { return a > 100 }) {
		t.Errorf("acknowledged %v: nothing beyond the held table's position may be", acks)
	}
}

// holdDest is a destination with table positions only (the batcher uses
// nothing else of it when a table fails).
type holdDest struct {
	connectors.Destination
	mu     sync.Mutex
	states map[connectors.TableName]connectors.TableState
}

func (d *holdDest) TableStates(context.Context) (map[connectors.TableName]connectors.TableState, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.states), nil
}

func (d *holdDest) PutTableState(_ context.Context, st connectors.TableState) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.states[st.Table] = st
	return nil
}

func (d *holdDest) DeleteTableState(_ context.Context, t connectors.TableName) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.states, t)
	return nil
}

// holdCat is fakeCatalog with the hold methods.
type holdCat struct {
	fakeCatalog
	mu   sync.Mutex
	held map[string]string // table: status + " " + reason
}

func (c *holdCat) TableHolds(context.Context, string) (map[string]catalog.TableHold, error) {
	return nil, nil
}

func (c *holdCat) SetTableHeld(_ context.Context, _, table, status, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held[table] = status + " " + reason
	return nil
}

func TestBatcherTableFailed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		held     bool // the table is held (else the error is the mirror's)
		strategy string
	}{
		{name: "table's error", err: errors.New(`relation "public.a" does not exist`), held: true},
		{name: "resumed table fails again", err: errors.New("value out of range"), held: true, strategy: connectors.Resumed},
		{name: "mirror's error", err: nil},
		{name: "table under a swap resync", err: errors.New("gone"), strategy: StrategySwap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dest{recorded: 300}
			a := d.applier()
			add := a.add
			cause := errors.New("connection reset")
			if tc.err != nil {
				cause = &connectors.TableError{Table: tabA, Err: tc.err}
			}
			a.add = func(ctx context.Context, changes ...[]connectors.Change) error {
				for _, c := range changes {
					for _, ch := range c {
						if ch.Table == tabA {
							_ = a.rollback(ctx)
							return cause
						}
					}
				}
				return add(ctx, changes...)
			}
			f := make(feed, 16)
			b := newTestBatcher(a, 300, 1000)
			hd := &holdDest{states: map[connectors.TableName]connectors.TableState{}}
			hc := &holdCat{held: map[string]string{}}
			b.dst, b.store = hd, hc
			b.rs = newResyncs()
			if tc.strategy != "" {
				b.rs.strategy[tabA] = tc.strategy
				if tc.strategy == connectors.Resumed {
					b.rs.pos[tabA] = lsnPos(200)
					hd.states[tabA] = connectors.TableState{Table: tabA, Stage: connectors.StageCatchup, Strategy: connectors.Resumed, Position: lsnPos(200)}
				}
			}
			f <- txOf(310, 320, "b:1", "a:1")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := b.run(ctx, d.stream(f))
			st, has := hd.states[tabA]
			if !tc.held {
				if !errors.Is(err, cause) || has && st.Stage == connectors.StageHeld || len(hc.held) != 0 {
					t.Fatalf("run: %v; state %+v; catalog %v: want the error, nothing held", err, st, hc.held)
				}
				return
			}
			if !errors.Is(err, errRestart) {
				t.Fatalf("run: %v, want a restart", err)
			}
			want := lsnPos(300) // the batch's start
			if tc.strategy == connectors.Resumed {
				want = lsnPos(200) // where its catch-up got to
			}
			if st.Stage != connectors.StageHeld || st.Strategy != connectors.HeldFailed || st.Position != want {
				t.Errorf("state %+v, want held (failed) at %s", st, want)
			}
			if got := hc.held["public.a"]; !strings.HasPrefix(got, "failed table public.a: ") || !strings.Contains(got, tc.err.Error()) {
				t.Errorf("catalog: %q, want failed with the reason naming the table", got)
			}
			if commits, _, _ := d.snapshot(); len(commits) != 0 || d.open {
				t.Errorf("committed %v (open %v): the batch must be rolled back", commits, d.open)
			}
		})
	}
}
