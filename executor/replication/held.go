package replication

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Held tables: per-table fault isolation, and PAUSE/RESUME MIRROR m TABLE t,
// on a destination that keeps a position per table
// (connectors.TablePositions). A held table is a table state
// (connectors.StageHeld) recorded on the destination with the position its
// changes are applied up to; the others stream.
//
//   - Holding. A table's changes that fail to apply for a reason of its own
//     (the applier returns a connectors.TableError: its destination table
//     gone, a value that no longer converts, a constraint) roll the batch
//     back; the table is held at the mirror's applied position (the batch's
//     start) or, if it was catching up, at its own, with status failed and
//     the reason in mirror_tables; the stream restarts from the applied
//     position without it. PAUSE MIRROR m TABLE t holds a table the same
//     way at the next restart of the stream, which the request causes.
//   - While held. The batcher drops the table's changes (resyncs.wanted),
//     and the mirror acknowledges nothing beyond the held position
//     (resyncs.ackLimit), so the source keeps them: on Postgres the slot
//     holds the WAL from there (lag_bytes shows it grow), which is the
//     price of a table held long. Each restart of the stream starts from
//     the lowest position and the other tables skip what they have.
//   - Resuming. RESUME MIRROR m TABLE t turns the state into a catch-up at
//     the held position (strategy connectors.Resumed, into the live table)
//     and restarts the stream: the table receives exactly its changes
//     after that position, each batch recording its position in the
//     batch's transaction, as a table resync's catch-up does; once caught
//     up its state is dropped. If the cause is still there, it fails and
//     is held again where it got to. RESYNC TABLE of a held table copies
//     it afresh instead (recreating a dropped destination table).
//
// A table under a resync (copy, catch-up into a shadow, swap) is not held:
// its apply errors stay the mirror's, as before. A destination with
// versioned rows and no TablePositions (ClickHouse) holds tables in the
// catalog only and brings them back by a copy (held_versioned.go).

// StepHeld is the step of a held table (mirror_tables.step).
const StepHeld = "held"

// holdCatalog is what holding tables needs of the catalog beside
// batchCatalog: *catalog.Store.
type holdCatalog interface {
	// TableHolds reads the tables' hold status and requests.
	TableHolds(ctx context.Context, mirror string) (map[string]catalog.TableHold, error)
	// SetTableHeld records a table held, with the reason of a failure.
	SetTableHeld(ctx context.Context, mirror, table, status, reason string) error
}

// holdable reports whether table t may be held: it is not under a resync
// other than its own catch-up after a resume.
func (r *resyncs) holdable(t connectors.TableName) bool {
	if r == nil || r.hold[t] {
		return false
	}
	s, ok := r.strategy[t]
	return !ok || s == connectors.Resumed
}

// tableFailed handles an error applying a batch: when it is a table's (a
// connectors.TableError) and the table may be held, the destination
// transaction is rolled back, the table is held where its changes are
// applied up to, and errRestart restarts the stream without it. Any other
// error is returned as it is (the mirror retries).
func (b *batcher) tableFailed(ctx context.Context, err error) error {
	te, ok := connectors.AsTableError(err)
	if !ok || !b.rs.holdable(te.Table) {
		return err
	}
	tp, ok := b.dst.(connectors.TablePositions)
	hc, ok2 := b.store.(holdCatalog)
	if !ok && b.vr == nil || !ok2 {
		return err
	}
	if _, copying := b.vr.copyOf(te.Table); copying {
		return err // a versioned resync's live table: the mirror's, as before
	}
	if rerr := b.applier.Rollback(ctx); rerr != nil {
		return err
	}
	if herr := b.f.holdFailed(ctx, tp, hc, te, b.applied); herr != nil {
		return fmt.Errorf("%w (and holding the table: %w)", err, herr)
	}
	b.f.observer().Error(b.f.m.Name, ErrorTable)
	return errRestart
}

// holdFailed holds the table of te, whose changes are applied up to
// applied (or, catching up after a resume, up to its own position), as
// failed with te as the reason. Without tp (a destination with versioned
// rows), the catalog alone records it (held_versioned.go).
func (f *flow) holdFailed(ctx context.Context, tp connectors.TablePositions, hc holdCatalog, te *connectors.TableError,
	applied connectors.Position) error {
	if tp == nil {
		if err := hc.SetTableHeld(ctx, f.m.Name, te.Table.String(), catalog.TableStatusFailed, te.Error()); err != nil {
			return err
		}
		f.log.ErrorContext(ctx, "table failed: holding it, the other tables go on", "table", te.Table.String(), "error", te.Err)
		return nil
	}
	states, err := tp.TableStates(ctx)
	if err != nil {
		return err
	}
	pos := applied
	if st, ok := states[te.Table]; ok && st.Stage == connectors.StageCatchup {
		pos = st.Position // resuming: where it got to
	}
	st := connectors.TableState{Table: te.Table, Stage: connectors.StageHeld, Strategy: connectors.HeldFailed, Position: pos}
	if err := tp.PutTableState(ctx, st); err != nil {
		return err
	}
	if err := hc.SetTableHeld(ctx, f.m.Name, te.Table.String(), catalog.TableStatusFailed, te.Error()); err != nil {
		return err
	}
	f.log.ErrorContext(ctx, "table failed: holding it, the other tables go on", "table", te.Table.String(),
		"position", f.display(pos), "error", te.Err)
	return nil
}

// pollHolds reports whether a table's pause or resume waits for the
// stream to restart: a pause of a table not held, a resume of one held.
func (b *batcher) pollHolds(ctx context.Context) (bool, error) {
	hc, ok := b.store.(holdCatalog)
	if !ok || b.rs == nil {
		return false, nil
	}
	holds, err := hc.TableHolds(ctx, b.f.m.Name)
	if err != nil {
		return false, err
	}
	for name, h := range holds {
		t, err := connectors.ParseTableName(name)
		if err != nil {
			return false, err
		}
		_, held := b.rs.held[t]
		switch {
		case h.Request == catalog.HoldPause && !held && b.rs.holdable(t):
			return true, nil
		case h.Request == catalog.HoldResume && held:
			return true, nil
		}
	}
	return false, nil
}

// planHold is planResyncs' part for table t, whose destination state is st
// (has: one is recorded) and catalog hold h: it holds the table (rs.held),
// turns a requested resume into a catch-up (rs.pos), or ends a resumed
// catch-up that is over. It reports whether it took care of the table;
// when not, planResyncs goes on with it (a resync of a held table: its
// copy drops the held state, its changes are dropped meanwhile).
func (f *flow) planHold(ctx context.Context, tp connectors.TablePositions, rs *resyncs, t mirrorTable,
	st connectors.TableState, has bool, h catalog.TableHold, applied connectors.Position) (bool, error) {
	name := t.source.String()
	held := has && st.Stage == connectors.StageHeld
	resumed := has && st.Stage == connectors.StageCatchup && st.Strategy == connectors.Resumed
	resyncing := t.catalog.ResyncStatus == catalog.ResyncPending || t.catalog.ResyncStatus == catalog.ResyncInProgress
	switch {
	case held && resyncing:
		// RESYNC TABLE of a held table: copied afresh (the copy drops the
		// held state); its changes wait meanwhile.
		rs.held[t.source] = st.Position
		if err := f.store.EndTableHold(ctx, f.m.Name, name, fmt.Sprintf("%s is resynced: held no more", name)); err != nil {
			return false, err
		}
		return false, nil
	case held && h.Request == catalog.HoldResume:
		cu := connectors.TableState{Table: t.source, Stage: connectors.StageCatchup, Strategy: connectors.Resumed, Position: st.Position}
		if err := tp.PutTableState(ctx, cu); err != nil {
			return false, err
		}
		if err := f.store.EndTableHold(ctx, f.m.Name, name,
			fmt.Sprintf("%s resumed: applying its changes since %s", name, f.display(st.Position))); err != nil {
			return false, err
		}
		if err := f.setStepNames(ctx, catalog.StepCatchingUp, name); err != nil {
			return false, err
		}
		f.log.InfoContext(ctx, "table resumed: catching up", "table", name, "from", f.display(st.Position))
		rs.pos[t.source], rs.strategy[t.source] = st.Position, connectors.Resumed
		return true, nil
	case held:
		status := catalog.TableStatusPaused
		if st.Strategy == connectors.HeldFailed {
			status = catalog.TableStatusFailed
		}
		if h.Status != status || h.Request == catalog.HoldPause {
			// Held on the destination, not yet in the catalog (a crash
			// between the two).
			if err := f.store.SetTableHeld(ctx, f.m.Name, name, status, h.Error); err != nil {
				return false, err
			}
		}
		if err := f.setStepNames(ctx, StepHeld, name); err != nil {
			return false, err
		}
		rs.held[t.source] = st.Position
		return true, nil
	case resumed && st.Position >= applied:
		// Caught up before a restart.
		if err := tp.DeleteTableState(ctx, t.source); err != nil {
			return false, err
		}
		return true, f.setStepNames(ctx, catalog.StepStreaming, name)
	case h.Request == catalog.HoldPause && (!has || resumed) && !resyncing:
		pos := applied
		if resumed {
			pos = st.Position
		}
		ps := connectors.TableState{Table: t.source, Stage: connectors.StageHeld, Strategy: connectors.HeldPaused, Position: pos}
		if err := tp.PutTableState(ctx, ps); err != nil {
			return false, err
		}
		if err := f.store.SetTableHeld(ctx, f.m.Name, name, catalog.TableStatusPaused, ""); err != nil {
			return false, err
		}
		if err := f.setStepNames(ctx, StepHeld, name); err != nil {
			return false, err
		}
		f.log.InfoContext(ctx, "table paused", "table", name, "position", f.display(pos))
		rs.held[t.source] = pos
		return true, nil
	}
	return false, nil
}

// isHeld reports whether table t is held (nil r: no).
func (r *resyncs) isHeld(t connectors.TableName) bool {
	if r == nil {
		return false
	}
	_, ok := r.held[t]
	return ok
}

// heldTables is the set of tables rs holds (nil rs: none).
func (r *resyncs) heldTables() map[connectors.TableName]bool {
	if r == nil {
		return nil
	}
	out := make(map[connectors.TableName]bool, len(r.held))
	for t := range r.held {
		out[t] = true
	}
	return out
}

// recreate creates the live destination table of t when it is gone (a
// held table dropped by hand, then resynced), before its copy.
func (f *flow) recreate(ctx context.Context, dst connectors.Destination, t mirrorTable, ts *connectors.TableSchema) error {
	ok, err := dst.TableExists(ctx, t.dest)
	if err != nil || ok {
		return err
	}
	if err := dst.CreateTable(ctx, f.destTable(t, ts)); err != nil {
		return fmt.Errorf("recreate destination table %s: %w", t.dest, err)
	}
	return f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("destination table %s was gone: created it again", t.dest))
}
