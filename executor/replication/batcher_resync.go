package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// The batcher's side of table resyncs: it polls for requests, hears from
// the copies, and finishes the resyncs between batches.

// pollResyncs restarts the stream when a table resync was requested and
// no copy is running (copies start with the stream, before any change of
// their table is received). On a destination that can resync no table,
// a request fails at once, naming the peer type; the mirror goes on.
func (b *batcher) pollResyncs(ctx context.Context) error {
	switch {
	case b.vr != nil && b.vr.copying == 0:
		if restart, err := b.pollHolds(ctx); err != nil || restart {
			return cmp.Or(err, errRestart)
		}
		return b.pollVersionedResyncs(ctx)
	case b.vr != nil:
		return b.pollVersionedResyncs(ctx)
	case b.noResyncs:
		return b.refuseResyncs(ctx)
	case b.rs == nil || b.rs.copying > 0:
		return nil
	}
	if restart, err := b.pollHolds(ctx); err != nil || restart {
		return cmp.Or(err, errRestart)
	}
	m, err := b.store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	var requested []catalog.MirrorTable
	for _, t := range m.Tables {
		if t.ResyncStatus != catalog.ResyncPending {
			continue
		}
		name, err := connectors.ParseTableName(t.Source)
		if err != nil {
			return err
		}
		if _, catchingUp := b.rs.pos[name]; !catchingUp {
			requested = append(requested, t)
		}
	}
	if len(requested) == 0 {
		return nil
	}
	started, err := b.copyHere(ctx, requested)
	if err != nil || !started {
		return cmp.Or(err, errRestart)
	}
	return nil
}

// copyHere starts the copies of the tables whose swap resync was
// requested (their catalog entries) on the running stream, as a restart
// of the stream would (planResyncs), without its cost: new connections,
// the tables described, the stream started again (0.2-0.25 s on the
// 2-core machine). The live table keeps receiving its changes while the
// copy runs, as after a restart. It reports false, having started
// nothing, when a restart is the simpler way: a truncate resync (its
// table's changes are held from the restart on), a source transaction
// half received, a batch it cannot commit now, a table with a resync
// state or held, or a mapping or schema that changed since the stream
// started. The batch before is committed first. From here the source
// keeps every change after the applied position, as after a restart,
// until the copies are done; then the stream restarts from their
// positions (copyDone).
func (b *batcher) copyHere(ctx context.Context, requested []catalog.MirrorTable) (bool, error) {
	if b.inTx || b.src == nil {
		return false, nil
	}
	if err := b.flush(ctx); err != nil {
		return false, err
	}
	if b.applier.InTx() || b.changes.n > 0 {
		return false, nil
	}
	tp, ok := b.dst.(connectors.TablePositions)
	if !ok {
		return false, nil
	}
	states, err := tp.TableStates(ctx)
	if err != nil {
		return false, err
	}
	var copies []resyncCopy
	for _, req := range requested {
		t, ok := b.streamTable(req)
		if !ok {
			return false, nil
		}
		_, has := states[t.source]
		_, held := b.rs.held[t.source]
		strategy := cmp.Or(req.ResyncStrategy, b.f.opt.ResyncStrategy)
		if has || held || b.rs.hold[t.source] || strategy != StrategySwap {
			return false, nil
		}
		copies = append(copies, resyncCopy{table: t, strategy: strategy})
	}
	// The copies read the tables as the stream knows them: a column the
	// source added that no change has brought yet restarts the stream,
	// which adds it first.
	schemas := make(map[connectors.TableName]*connectors.TableSchema, len(copies))
	for _, c := range copies {
		list, err := b.f.describe(ctx, b.src, []mirrorTable{c.table})
		if err != nil {
			return false, err
		}
		if known := b.schemaOf(c.table.source); known == nil || !sameColumns(list[0], known) {
			return false, nil
		}
		schemas[c.table.source] = list[0]
	}
	for _, c := range copies {
		b.rs.strategy[c.table.source] = c.strategy
	}
	b.rs.copying = len(copies)
	b.rs.capAt = b.applied
	b.f.log.DebugContext(ctx, "table resync: copies start on the running stream", "tables", len(copies))
	b.startCopies(ctx, copies, schemas)
	return true, nil
}

// streamTable returns the mapping of the stream's table whose catalog
// entry is req, with req's resync request, unless the mapping changed
// since the stream started.
func (b *batcher) streamTable(req catalog.MirrorTable) (mirrorTable, bool) {
	for _, t := range b.f.tables() {
		c := t.catalog
		if c.Source == req.Source {
			same := c.Destination == req.Destination && slices.Equal(c.Exclude, req.Exclude) && slices.Equal(c.OrderBy, req.OrderBy)
			t.catalog = req
			return t, same && t.dest == t.live
		}
	}
	return mirrorTable{}, false
}

// schemaOf is the schema the batcher applies source table t's changes
// with, nil when t is not streamed.
func (b *batcher) schemaOf(t connectors.TableName) *connectors.TableSchema {
	for _, d := range b.dests {
		if d.Source == t {
			return d.Schema
		}
	}
	return nil
}

// refuseResyncs fails the requested table resyncs of a mirror whose
// destination cannot run one.
func (b *batcher) refuseResyncs(ctx context.Context) error {
	m, err := b.store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	for _, t := range m.Tables {
		if t.ResyncStatus != catalog.ResyncPending && t.ResyncStatus != catalog.ResyncInProgress {
			continue
		}
		msg := b.f.unsupported("RESYNC TABLE").Error()
		if err := b.f.store.SetTableResync(ctx, b.f.m.Name, t.Source, catalog.ResyncFailed, msg); err != nil {
			return err
		}
	}
	return nil
}

// caughtUp finishes the resyncs of the tables the last batch brought up to
// the mirror: a truncate resync is done; a swap resync swaps its table in.
func (b *batcher) caughtUp(ctx context.Context) error {
	for _, t := range b.rs.caught {
		if b.rs.strategy[t] == connectors.Resumed {
			// A resumed table caught up (held.go): it streams.
			delete(b.rs.strategy, t)
			if err := b.f.setStepNames(ctx, catalog.StepStreaming, t.String()); err != nil {
				return err
			}
			b.f.log.InfoContext(ctx, "resumed table caught up", "table", t.String())
			continue
		}
		if b.rs.strategy[t] == StrategyTruncate {
			if err := b.f.store.SetTableResync(ctx, b.f.m.Name, t.String(), catalog.ResyncDone, ""); err != nil {
				return err
			}
			if err := b.f.setStepNames(ctx, catalog.StepStreaming, t.String()); err != nil {
				return err
			}
			b.f.log.InfoContext(ctx, "table resync done", "table", t.String())
			continue
		}
		for i := range b.dests {
			d := &b.dests[i]
			if d.Source != t {
				continue
			}
			live, err := b.f.liveName(t)
			if err != nil {
				return err
			}
			if err := b.f.finishSwap(ctx, b.dst, t, live, d.Schema); err != nil {
				return err
			}
			d.Dest = live
		}
		b.applier.SetTables(b.dests)
	}
	b.rs.caught = b.rs.caught[:0]
	return nil
}

// liveName is the mapped destination of source table t.
func (f *flow) liveName(t connectors.TableName) (connectors.TableName, error) {
	for _, mt := range f.tables() {
		if mt.source == t {
			return mt.dest, nil
		}
	}
	return connectors.TableName{}, fmt.Errorf("table %s is not in mirror %q", t, f.m.Name)
}

// startCopies runs the copies, each in a goroutine reporting to rs.done.
// They stop when ctx ends; the caller waits for them with b.copies.Wait.
func (b *batcher) startCopies(ctx context.Context, copies []resyncCopy, schemas map[connectors.TableName]*connectors.TableSchema) {
	for _, c := range copies {
		b.copies.Add(1)
		go func() {
			defer b.copies.Done()
			err := protect(func() error { return b.f.copyTable(ctx, c, schemas[c.table.source]) })
			b.rs.done <- copyResult{table: c.table.source, err: err}
		}()
	}
}

// copyDone handles a copy's end in the batcher: an error fails the flow
// (the copy starts over after the backoff; a copy fenced by a later lease
// epoch stops the flow, without marking the resync failed), unless it
// refused the resync before anything changed (refused); when the last copy is done, the
// stream restarts to replay the copied tables' changes.
func (b *batcher) copyDone(ctx context.Context, r copyResult) error {
	if r.err != nil && refused(r.err) {
		// The resync fails, the mirror goes on.
		if err := b.f.store.SetTableResync(ctx, b.f.m.Name, r.table.String(), catalog.ResyncFailed, r.err.Error()); err != nil {
			return err
		}
		if err := b.f.setStepNames(ctx, catalog.StepStreaming, r.table.String()); err != nil {
			return err
		}
		r.err = nil
	}
	if r.err != nil {
		// A copy refused by a later lease epoch's claim did not fail: the
		// node that claimed the mirror carries the resync on.
		if ctx.Err() == nil && !errors.Is(r.err, connectors.ErrFenced) {
			_ = b.f.store.SetTableResync(ctx, b.f.m.Name, r.table.String(), catalog.ResyncFailed, r.err.Error())
		}
		return fmt.Errorf("resync of %s: %w", r.table, r.err)
	}
	b.rs.copying--
	if b.rs.copying == 0 {
		return errRestart
	}
	return nil
}

// sameColumns reports whether a and b describe the same table alike, but
// for their size estimates.
func sameColumns(a, b *connectors.TableSchema) bool {
	x, y := *a, *b
	x.EstimatedRows, x.Pages, y.EstimatedRows, y.Pages = 0, 0, 0, 0
	return reflect.DeepEqual(x, y)
}
