package replication

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sluicedb/sluice/connectors"
)

// cdc is the CDC phase: stream changes from the source and apply them in
// batches (batcher.go). Each batch commits on the destination together
// with its end position; only then is the position acknowledged to the
// source. On restart the stream resumes after the last position the
// destination recorded, so no change is lost or applied twice. Table
// resyncs run inside this phase (resync_catchup.go, resync_versioned.go).
func (f *flow) cdc(ctx context.Context) error {
	src, dst, closeAll, err := f.open(ctx, "sluice-cdc")
	if err != nil {
		return err
	}
	defer closeAll()
	// The claim comes first: the position read after it is one no stale
	// node can move any more (fence.go).
	if err := f.fence(ctx, dst); err != nil {
		return err
	}
	// Tables a swap set aside before a crash (see dropRetired).
	if err := f.dropRetired(ctx, dst); err != nil {
		return err
	}
	last, err := dst.Applied(ctx)
	if err != nil {
		return err
	}
	spec := f.spec()
	spec.From = connectors.MaxPosition(last, f.m.ConsistentPosition)
	if err := src.CheckStream(ctx, spec); err != nil {
		return f.streamError(err)
	}
	tables := f.tables()
	list, err := f.describe(ctx, src, tables)
	if err != nil {
		return err
	}
	schemas := make(map[connectors.TableName]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		schemas[t.source] = list[i]
	}
	applied := connectors.MaxPosition(last, f.m.ConsistentPosition)
	start := applied
	var rs *resyncs
	var shadows map[connectors.TableName]connectors.TableName
	var copies []resyncCopy
	tp, catchup := dst.(connectors.TablePositions)
	_, versioned := dst.(connectors.VersionedRows)
	switch {
	case catchup:
		if rs, start, shadows, copies, err = f.planResyncs(ctx, dst, tp, applied, schemas); err != nil {
			return err
		}
	case versioned:
		if rs, err = f.planVersionedHolds(ctx, dst, schemas); err != nil { // held_versioned.go
			return err
		}
	}
	sf, follows := dst.(connectors.SchemaFollower)
	dests := make([]connectors.DestTable, len(tables))
	for i, t := range tables {
		d := f.destTable(t, schemas[t.source])
		if sh, ok := shadows[t.source]; ok {
			d.Dest = sh
		}
		if follows && !rs.heldTables()[t.source] {
			// Columns the source gained while the mirror was stopped
			// (a held table's when it comes back).
			events, err := sf.AddColumns(ctx, src, d, d.Schema.Columns)
			if te, ok := connectors.AsTableError(err); ok && rs.holdable(te.Table) {
				// Its destination table is gone: hold it, start again.
				return f.holdFailed(ctx, tp, f.store, te, applied)
			}
			if err != nil {
				return err
			}
			if err := f.schemaEvents(ctx, t.source, events); err != nil {
				return err
			}
		}
		dests[i] = d
	}
	if tc, ok := dst.(connectors.TableChecker); ok {
		checked := dests
		if held := rs.heldTables(); len(held) > 0 {
			checked = slices.DeleteFunc(slices.Clone(dests), func(d connectors.DestTable) bool { return held[d.Source] })
		}
		if err := tc.CheckTables(ctx, checked); err != nil {
			if errors.Is(err, connectors.ErrTableChanged) {
				return &UserError{Err: err}
			}
			return err
		}
	}
	applier, err := dst.NewApplier(ctx, dests)
	if err != nil {
		return err
	}
	// Large transactions come before their commit when nothing needs
	// them at it (early.go).
	earlyOK := f.earlyFits(versioned, applier, rs)
	early := earlyOK && f.early.allowed()
	stream, err := f.startStream(ctx, src, schemas, start, early)
	if err != nil {
		return err
	}
	defer stream.Close(context.Background()) // after b.run, which stops the reader

	b := &batcher{f: f, applier: applier, store: f.store, dst: dst, applied: applied, dests: dests, rs: rs,
		lateOnly: earlyOK && !early, src: src}
	b.useOptions(f.opt) // then followed as they change (live_options.go)
	if follows {
		b.addColumnsTo = f.columnAdder(src, sf)
	}
	b.setAcked(start)
	if rs.catchingUp() {
		// A heartbeat beyond everything: when it comes back, the tables
		// catching up have caught up even if the source is idle.
		if err := stream.Heartbeat(ctx); err != nil {
			return err
		}
	}
	// The copies run as long as the batcher, and copies it starts on the
	// running stream (copyHere) take its context.
	cctx, cancel := context.WithCancel(ctx)
	wait := func() {}
	switch {
	case catchup:
		b.startCopies(cctx, copies, schemas)
	case versioned:
		b.vr, wait = f.startVersionedResyncs(cctx)
	default:
		b.noResyncs = true
	}
	err = b.run(cctx, stream)
	cancel()
	wait()
	b.copies.Wait()
	if errors.Is(err, errRestart) {
		return nil
	}
	if errors.Is(err, connectors.ErrEarlyAbandoned) && ctx.Err() == nil {
		// The destination transaction is rolled back (b.run): start again
		// from the applied position, the stream sending at commits.
		f.log.InfoContext(ctx, "a large transaction sent before its commit cannot be applied as one: "+
			"the stream starts again and sends transactions at their commit for a while",
			"reason", err.Error(), "for", f.early.abandoned())
		return nil
	}
	return f.explainStreamError(ctx, err)
}

// startStream starts the mirror's change stream at start (early: sending
// large transactions before their commit, when the source can), and emits
// a heartbeat, whose acknowledgement shows progress (flow.progressed) even
// when the source is idle.
func (f *flow) startStream(ctx context.Context, src connectors.Source, schemas map[connectors.TableName]*connectors.TableSchema,
	start connectors.Position, early bool) (connectors.Stream, error) {
	stream, err := openStream(ctx, src, f.spec(), start, schemas, early)
	if errors.Is(err, connectors.ErrStreamBusy) {
		// A stale node's reader may still hold the stream (fence.go).
		took, terr := f.takeStream(ctx, src)
		if terr != nil {
			return nil, fmt.Errorf("%w (taking the stream over failed: %w)", err, terr)
		}
		if took {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(fenceRetryAfter):
			}
			stream, err = openStream(ctx, src, f.spec(), start, schemas, early)
		}
	}
	if err != nil {
		return nil, f.streamError(err)
	}
	if err := stream.Heartbeat(ctx); err != nil {
		stream.Close(context.Background())
		return nil, err
	}
	f.log.InfoContext(ctx, "streaming changes", "from", f.display(start))
	return stream, nil
}

// streamError turns a source's error for a lost stream into the error
// that waits for the user (LostStreamError).
func (f *flow) streamError(err error) error {
	if errors.Is(err, connectors.ErrStreamLost) {
		return LostStreamError(f.m.Name, f.opt.Slot, f.m.SourcePeer)
	}
	return err
}

// explainStreamError turns the error that stopped the stream into
// LostStreamError when the source discarded the stream (it ends a stream
// it invalidates, and then refuses to stream from it), checking on a
// connection of its own; other errors are returned as they are.
func (f *flow) explainStreamError(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, errRestart) {
		return err
	}
	if errors.Is(err, connectors.ErrStreamLost) {
		return f.streamError(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	src, cerr := f.src.OpenSource(cctx, "sluice-cdc")
	if cerr != nil {
		return err
	}
	defer src.Close(context.Background())
	if lost := src.CheckStream(cctx, f.spec()); errors.Is(lost, connectors.ErrStreamLost) {
		return f.streamError(lost)
	}
	return err
}

// columnAdder is the batcher's hook for columns the source added (see
// batcher.addColumnsTo).
type columnAdder func(ctx context.Context, d connectors.DestTable, cols []connectors.Column) (*connectors.TableSchema, error)

// columnAdder returns the batcher's hook for columns the stream reports:
// the destination adds them to d's table and fills them in for the rows it
// has from the source, and the hook returns d's schema with them, a new
// one (a table copy under way reads the old one).
func (f *flow) columnAdder(src connectors.Source, sf connectors.SchemaFollower) columnAdder {
	return func(ctx context.Context, d connectors.DestTable, cols []connectors.Column) (*connectors.TableSchema, error) {
		events, err := sf.AddColumns(ctx, src, d, cols)
		if err != nil {
			return nil, err
		}
		f.log.InfoContext(ctx, "source added columns", "table", d.Source.String(), "columns", len(cols))
		if err := f.schemaEvents(ctx, d.Source, events); err != nil {
			return nil, err
		}
		ts := *d.Schema
		ts.Columns = append(slices.Clip(ts.Columns), cols...)
		return &ts, nil
	}
}

// schemaEvents records what the destination did to follow table's schema.
func (f *flow) schemaEvents(ctx context.Context, table connectors.TableName, events []string) error {
	for _, e := range events {
		if err := f.store.AddEvent(ctx, f.m.Name, "schema", e); err != nil {
			return fmt.Errorf("record a schema change of %s: %w", table, err)
		}
	}
	return nil
}
