package replication

import (
	"cmp"
	"context"
	"errors"
	"fmt"

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
	for _, t := range m.Tables {
		if t.ResyncStatus != catalog.ResyncPending {
			continue
		}
		name, err := connectors.ParseTableName(t.Source)
		if err != nil {
			return err
		}
		if _, catchingUp := b.rs.pos[name]; !catchingUp {
			return errRestart
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
// They stop when ctx ends; the caller waits for them with wait.
func (b *batcher) startCopies(ctx context.Context, copies []resyncCopy, schemas map[connectors.TableName]*connectors.TableSchema) (wait func()) {
	done := make(chan struct{}, len(copies))
	for _, c := range copies {
		go func() {
			defer func() { done <- struct{}{} }()
			err := b.f.copyTable(ctx, c, schemas[c.table.source])
			b.rs.done <- copyResult{table: c.table.source, err: err}
		}()
	}
	return func() {
		for range copies {
			<-done
		}
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
