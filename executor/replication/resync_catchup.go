package replication

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Table resync (RESYNC TABLE) on a destination that keeps a position per
// table (connectors.TablePositions), inside the CDC phase. The mirror's
// stream is kept and the other tables keep streaming; the table goes
// through stages recorded on the destination (connectors.TableState), each
// entered in the transaction that finished the one before:
//
//  1. copy: the source gives a snapshot of its own and its position L
//     (connectors.TableSnapshotter); the table is copied under it, into
//     itself emptied (truncate: connectors.Emptier drops what would slow
//     the reload and rebuilds it after) or into a shadow table (swap:
//     connectors.ShadowSwapper; the live table keeps receiving changes
//     meanwhile). While a copy runs, the mirror acknowledges nothing
//     beyond where its stream started, so the source keeps every change
//     committed after L; the truncate strategy drops the table's changes
//     meanwhile.
//  2. catchup: the copy committed with L as the table's own position. The
//     stream restarts from the lowest position of all, and a change is
//     applied only when its transaction commits after its table's
//     position, so the table receives exactly its changes after L (into
//     the shadow table, with swap) while the others skip what they have.
//     Every batch records the positions it reached; acknowledgements stay
//     at the lowest.
//  3. swap (swap strategy): once caught up with the mirror, the shadow
//     table replaces the live one in one destination transaction.
//
// A copy killed half-way starts over (a snapshot does not survive its
// connection); the other stages resume where the destination says.

// errRestart ends the CDC phase so that it starts again at once: after a
// table copy, to replay its changes, or to begin a requested resync.
var errRestart = errors.New("restart the stream")

// resyncs is what the batcher knows of table resyncs that catch up. A nil
// *resyncs is valid and means none.
type resyncs struct {
	// pos holds the tables catching up: their own positions, below the
	// mirror's.
	pos map[connectors.TableName]connectors.Position
	// hold holds the tables being copied with the truncate strategy: their
	// changes are dropped (they are replayed after the copy).
	hold map[connectors.TableName]bool
	// held holds the tables paused or failed (held.go) and the positions
	// their changes are applied up to: their changes are dropped, and
	// nothing beyond is acknowledged.
	held map[connectors.TableName]connectors.Position
	// strategy of every table with a resync under way here.
	strategy map[connectors.TableName]string
	// copying counts copies running; capAt is the acknowledgement limit
	// while they run.
	copying int
	capAt   connectors.Position
	done    chan copyResult
	// caught lists the tables the last batch brought up to the mirror.
	caught []connectors.TableName
}

type copyResult struct {
	table connectors.TableName
	err   error
}

func newResyncs() *resyncs {
	return &resyncs{pos: map[connectors.TableName]connectors.Position{}, hold: map[connectors.TableName]bool{},
		held:     map[connectors.TableName]connectors.Position{},
		strategy: map[connectors.TableName]string{}, done: make(chan copyResult, 64)}
}

// doneCh is where copies report (nil, which blocks, when r is nil).
func (r *resyncs) doneCh() chan copyResult {
	if r == nil {
		return nil
	}
	return r.done
}

func (r *resyncs) active() bool {
	return r != nil && (len(r.pos) > 0 || len(r.hold) > 0 || len(r.held) > 0)
}

func (r *resyncs) catchingUp() bool { return r != nil && len(r.pos) > 0 }

// wanted reports whether a change of table in a transaction whose commit
// starts at begin is to be applied, the mirror being at applied.
func (r *resyncs) wanted(table connectors.TableName, begin, applied connectors.Position) bool {
	if _, held := r.held[table]; held || r.hold[table] {
		return false
	}
	if p, ok := r.pos[table]; ok {
		return begin >= p
	}
	return begin >= applied
}

// ackLimit is the highest position that may be acknowledged ("": no
// limit).
func (r *resyncs) ackLimit() connectors.Position {
	if r == nil {
		return ""
	}
	limit := connectors.Position("")
	if r.copying > 0 {
		limit = r.capAt
	}
	for _, p := range r.pos {
		if limit == "" || p < limit {
			limit = p
		}
	}
	for _, p := range r.held {
		if limit == "" || p < limit {
			limit = p
		}
	}
	return limit
}

// record returns what a batch ending at end, after which the mirror is at
// applied, records in its destination transaction: the resync states to
// put and the tables whose resync is over (drop). Every table catching up
// has its changes up to end. The caller commits them with the batch.
func (r *resyncs) record(end, applied connectors.Position) (put []connectors.TableState, drop []connectors.TableName) {
	r.caught = r.caught[:0]
	for t, p := range r.pos {
		if end <= p {
			continue
		}
		st := connectors.TableState{Table: t, Stage: connectors.StageCatchup, Strategy: r.strategy[t], Position: end}
		if end >= applied {
			r.caught = append(r.caught, t)
			if r.strategy[t] == StrategyTruncate || r.strategy[t] == connectors.Resumed {
				drop = append(drop, t)
				continue
			}
			st.Stage = connectors.StageSwap
		}
		put = append(put, st)
	}
	for _, t := range r.caught {
		delete(r.pos, t)
	}
	for t := range r.pos {
		r.pos[t] = max(r.pos[t], end)
	}
	return put, drop
}

// planResyncs reads the destination's table resync states and the
// catalog's requests: it finishes swaps left to do, returns the batcher's
// resync state with the stream's start position (the lowest of the
// mirror's and the tables'), the destination each table's changes go to,
// and the copies to start.
func (f *flow) planResyncs(ctx context.Context, dst connectors.Destination, tp connectors.TablePositions, applied connectors.Position,
	schemas map[connectors.TableName]*connectors.TableSchema) (*resyncs, connectors.Position, map[connectors.TableName]connectors.TableName, []resyncCopy, error) {
	states, err := tp.TableStates(ctx)
	if err != nil {
		return nil, "", nil, nil, err
	}
	var shadows map[connectors.TableName]connectors.TableName
	if sw, ok := dst.(connectors.ShadowSwapper); ok {
		if shadows, err = sw.Shadows(ctx); err != nil {
			return nil, "", nil, nil, err
		}
	}
	holds, err := f.store.TableHolds(ctx, f.m.Name)
	if err != nil {
		return nil, "", nil, nil, err
	}
	rs := newResyncs()
	start := applied
	dests := make(map[connectors.TableName]connectors.TableName)
	var copies []resyncCopy
	for _, t := range f.tables() {
		st, has := states[t.source]
		if done, err := f.planHold(ctx, tp, rs, t, st, has, holds[t.source.String()], applied); err != nil {
			return nil, "", nil, nil, err
		} else if done {
			if p, ok := rs.held[t.source]; ok {
				start = min(start, p)
			}
			if p, ok := rs.pos[t.source]; ok {
				start = min(start, p)
			}
			continue
		}
		if has && st.Stage == connectors.StageCatchup && st.Position >= applied {
			// Caught up already (the stream passed it before a restart).
			st.Stage = connectors.StageSwap
			if st.Strategy == StrategyTruncate {
				if err := tp.DeleteTableState(ctx, t.source); err != nil {
					return nil, "", nil, nil, err
				}
				if err := f.store.SetTableResync(ctx, f.m.Name, t.source.String(), catalog.ResyncDone, ""); err != nil {
					return nil, "", nil, nil, err
				}
				if err := f.setStep(ctx, catalog.StepStreaming, t); err != nil {
					return nil, "", nil, nil, err
				}
				continue
			}
			if err := tp.PutTableState(ctx, st); err != nil {
				return nil, "", nil, nil, err
			}
		}
		switch {
		case has && st.Stage == connectors.StageSwap:
			if err := f.finishSwap(ctx, dst, t.source, t.dest, schemas[t.source]); err != nil {
				return nil, "", nil, nil, err
			}
		case has && st.Stage == connectors.StageCatchup:
			if st.Strategy == StrategySwap {
				shadow, ok := shadows[t.dest]
				if !ok {
					if err := f.shadowLost(ctx, tp, t.source, t.dest); err != nil {
						return nil, "", nil, nil, err
					}
					continue
				}
				dests[t.source] = shadow
			}
			rs.pos[t.source] = st.Position
			rs.strategy[t.source] = st.Strategy
			start = min(start, st.Position)
		case has && st.Stage == connectors.StageCopy:
			copies = append(copies, resyncCopy{table: t, strategy: st.Strategy, state: &st})
		case t.catalog.ResyncStatus == catalog.ResyncPending || t.catalog.ResyncStatus == catalog.ResyncInProgress:
			strategy := t.catalog.ResyncStrategy
			if strategy == "" {
				strategy = f.opt.ResyncStrategy
			}
			copies = append(copies, resyncCopy{table: t, strategy: strategy})
		}
	}
	for _, c := range copies {
		rs.strategy[c.table.source] = c.strategy
		if c.strategy == StrategyTruncate {
			rs.hold[c.table.source] = true
		}
	}
	rs.copying = len(copies)
	rs.capAt = start
	return rs, start, dests, copies, nil
}

// resyncCopy is a table copy to run.
type resyncCopy struct {
	table    mirrorTable
	strategy string
	state    *connectors.TableState // the destination's record of an earlier attempt, if any
}

// refused reports whether a copy's error refused the resync before it
// changed anything: the resync fails and the mirror goes on.
func refused(err error) bool {
	var u *UserError
	return errors.Is(err, connectors.ErrNotSwappable) || errors.Is(err, connectors.ErrNoFreeName) || errors.As(err, &u)
}

// copyTable is stage 1 of a table resync: it copies the table under a
// snapshot of its own and records the copy's position (stage catchup).
func (f *flow) copyTable(ctx context.Context, c resyncCopy, ts *connectors.TableSchema) error {
	name := c.table.source.String()
	if err := f.store.SetTableResync(ctx, f.m.Name, name, catalog.ResyncInProgress, ""); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepCopying, c.table); err != nil {
		return err
	}
	src, dst, closeAll, err := f.open(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer closeAll()
	// Claimed (the stream's epoch, already recorded: nothing changes), so
	// that this connection's state records and swap check the epoch.
	if err := f.fence(ctx, dst); err != nil {
		return err
	}
	tp, ok := dst.(connectors.TablePositions)
	if !ok {
		return f.unsupported("RESYNC TABLE")
	}
	snapshotter, ok := src.(connectors.TableSnapshotter)
	if !ok {
		return &UserError{Err: fmt.Errorf("RESYNC TABLE is not supported for %s sources", f.srcType)}
	}
	live := c.table.dest
	if err := f.recreate(ctx, dst, c.table, ts); err != nil {
		return err
	}
	var sw connectors.ShadowSwapper
	var em connectors.Emptier
	switch c.strategy {
	case StrategySwap:
		if sw, ok = dst.(connectors.ShadowSwapper); !ok {
			return f.unsupported("strategy 'swap'")
		}
		// Refused for good: the resync fails and the mirror goes on.
		if err := sw.CheckSwappable(ctx, live); err != nil {
			return err
		}
	case StrategyTruncate:
		if em, ok = dst.(connectors.Emptier); !ok {
			return f.unsupported("strategy 'truncate'")
		}
	default:
		return fmt.Errorf("unknown resync strategy %q", c.strategy)
	}
	if c.state == nil {
		// From here on, a failure is retried: the copy starts over.
		st := connectors.TableState{Table: c.table.source, Stage: connectors.StageCopy, Strategy: c.strategy}
		if err := tp.PutTableState(ctx, st); err != nil {
			return err
		}
		c.state = &st
	}
	snap, err := snapshotter.TableSnapshot(ctx)
	if err != nil {
		return fmt.Errorf("snapshot for the copy: %w", err)
	}
	defer snap.Close()
	f.log.InfoContext(ctx, "table resync: copying", "table", name, "strategy", c.strategy, "position", string(snap.Position))
	_ = f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copying %s (%s) as of %s", name, c.strategy, f.display(snap.Position)))

	target := live
	d := f.destTable(c.table, ts)
	switch c.strategy {
	case StrategySwap:
		// A free name, recorded as Sluice's own with the table; the shadow
		// an earlier attempt recorded is dropped, nothing else.
		shadow, err := sw.CreateShadow(ctx, d, f.reserved())
		if errors.Is(err, connectors.ErrNoFreeName) {
			// Refused for good, nothing made: the resync fails.
			if err := tp.DeleteTableState(ctx, c.table.source); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		target = shadow
	case StrategyTruncate:
		st, err := em.Empty(ctx, live, *c.state)
		if err != nil {
			return err
		}
		c.state = &st
	}
	if err := dst.ForgetLoad(ctx, c.table.source); err != nil {
		return err
	}
	one := mirrorTable{source: c.table.source, dest: target, live: live, exclude: c.table.exclude,
		catalog: catalog.MirrorTable{Source: name, Destination: target.String(), OrderBy: c.table.catalog.OrderBy}}
	if err := f.loadTables(ctx, src, dst, snap.Name, snap.Version, []mirrorTable{one}, []*connectors.TableSchema{ts}); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepBuildingIndexes, c.table); err != nil {
		return err
	}
	switch c.strategy {
	case StrategySwap:
		if lf, ok := dst.(connectors.LoadFinisher); ok {
			if err := lf.FinishLoad(ctx, f.destTable(one, ts), live); err != nil {
				return err
			}
		}
	case StrategyTruncate:
		if err := em.Restore(ctx, d, *c.state); err != nil {
			return err
		}
	}
	st := connectors.TableState{Table: c.table.source, Stage: connectors.StageCatchup, Strategy: c.strategy, Position: snap.Position}
	if err := tp.PutTableState(ctx, st); err != nil {
		return err
	}
	if err := dst.ForgetLoad(ctx, c.table.source); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepCatchingUp, c.table); err != nil {
		return err
	}
	return f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copied %s; applying its changes since %s", name, f.display(snap.Position)))
}

// finishSwap swaps the caught-up shadow of source table t in for live, in
// one destination transaction that also ends the table's resync, carrying
// soft-deleted rows over first. Readers of live wait for it but never see
// the table missing or empty.
func (f *flow) finishSwap(ctx context.Context, dst connectors.Destination, t, live connectors.TableName, ts *connectors.TableSchema) error {
	sw, ok := dst.(connectors.ShadowSwapper)
	tp, ok2 := dst.(connectors.TablePositions)
	if !ok || !ok2 {
		return f.unsupported("strategy 'swap'")
	}
	shadows, err := sw.Shadows(ctx)
	if err != nil {
		return err
	}
	shadow, has := shadows[live]
	if !has {
		return f.shadowLost(ctx, tp, t, live)
	}
	if err := f.setStepNames(ctx, catalog.StepSwapping, t.String()); err != nil {
		return err
	}
	began := time.Now()
	d := connectors.DestTable{Source: t, Dest: live, Schema: ts, SoftDeleteColumn: f.opt.SoftDeleteColumn, SyncedAtColumn: f.opt.SyncedAtColumn}
	rep, err := sw.SwapIn(ctx, []connectors.Swap{{Table: d, EndResync: true}})
	took := time.Since(began)
	if errors.Is(err, connectors.ErrShadowLost) {
		return f.shadowLost(ctx, tp, t, live)
	}
	if err != nil {
		if !errors.Is(err, connectors.ErrFenced) { // else the node that claimed the mirror swaps
			_ = f.store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncFailed, err.Error())
		}
		return fmt.Errorf("swap %s in for %s: %w", shadow, live, err)
	}
	if err := f.store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncDone, ""); err != nil {
		return err
	}
	msg := fmt.Sprintf("swapped the resynced copy of %s in for %s in %s", t, live, took.Round(time.Millisecond))
	if len(rep.Notes) > 0 {
		msg += "; " + strings.Join(rep.Notes, "; ")
	}
	f.log.InfoContext(ctx, "table resync done", "table", t.String(), "swap", took)
	if err := f.store.AddEvent(ctx, f.m.Name, "resync", msg); err != nil {
		return err
	}
	if len(rep.Validate) > 0 {
		if err := f.setStepNames(ctx, catalog.StepValidatingForeignKeys, t.String()); err != nil {
			return err
		}
		if err := f.validate(ctx, dst, rep.Validate); err != nil {
			return err
		}
	}
	if err := f.analyze(ctx, dst, rep.Analyze); err != nil {
		return err
	}
	if err := f.dropRetired(ctx, dst); err != nil {
		return err
	}
	return f.setStepNames(ctx, catalog.StepStreaming, t.String())
}

// shadowLost fails the swap resync of source table t whose shadow table
// (recorded as Sluice's own) is gone or was replaced by another table:
// the changes since the copy went to it, so the table must be copied
// again. A table now at the shadow's name is not Sluice's and is left
// alone.
func (f *flow) shadowLost(ctx context.Context, tp connectors.TablePositions, t, live connectors.TableName) error {
	if err := tp.DeleteTableState(ctx, t); err != nil {
		return err
	}
	if err := f.setStepNames(ctx, catalog.StepStreaming, t.String()); err != nil {
		return err
	}
	return f.store.SetTableResync(ctx, f.m.Name, t.String(), catalog.ResyncFailed,
		fmt.Sprintf("the shadow table of %s disappeared before the swap; %s misses changes: run RESYNC TABLE %s.%s again", live, live, f.m.Name, t))
}
