package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Table resync on a destination whose rows carry versions
// (connectors.VersionedRows), such as ClickHouse. The table never stops
// streaming and the source's stream is never held back: the source gives a
// snapshot of its own at L; the table is loaded under it into a shadow
// table (with the table's current sorting key, which a resync may change),
// every row with version L; then, between two batches, the rows the live
// table received after L and its deleted rows are carried into the shadow
// and the shadow is swapped in (ShadowSwapper.SwapIn with NewerThan). Both
// strategies do this: such a table is never emptied for readers. A resync
// cut off by a crash starts over.

// versionedResyncs is what the batcher knows of versioned table resyncs.
// A nil *versionedResyncs is valid and means none.
type versionedResyncs struct {
	copying int
	done    chan versionedCopy
	tables  map[connectors.TableName]mirrorTable
}

type versionedCopy struct {
	table   connectors.TableName
	version uint64 // the copy's snapshot
	err     error
}

// active reports whether table copies started with the stream.
func (r *versionedResyncs) active() bool { return r != nil && len(r.tables) > 0 }

// versionedCopies reports whether a table resync is asked for or under
// way: the stream starts its copy (startVersionedResyncs).
func (f *flow) versionedCopies() bool {
	for _, t := range f.tables() {
		if t.catalog.ResyncStatus == catalog.ResyncPending || t.catalog.ResyncStatus == catalog.ResyncInProgress {
			return true
		}
	}
	return false
}

func (r *versionedResyncs) doneCh() chan versionedCopy {
	if r == nil {
		return nil
	}
	return r.done
}

// startVersionedResyncs starts the copies of the tables whose resync was
// asked for; the caller waits for them with wait.
func (f *flow) startVersionedResyncs(ctx context.Context) (r *versionedResyncs, wait func()) {
	r = &versionedResyncs{done: make(chan versionedCopy, 64), tables: map[connectors.TableName]mirrorTable{}}
	finished := make(chan struct{}, len(f.m.Tables))
	for _, t := range f.tables() {
		if t.catalog.ResyncStatus != catalog.ResyncPending && t.catalog.ResyncStatus != catalog.ResyncInProgress {
			continue
		}
		r.tables[t.source] = t
		r.copying++
		go func() {
			defer func() { finished <- struct{}{} }()
			version, err := f.copyVersioned(ctx, t)
			r.done <- versionedCopy{table: t.source, version: version, err: err}
		}()
	}
	n := r.copying
	return r, func() {
		for range n {
			<-finished
		}
	}
}

// copyVersioned loads a table's shadow under a snapshot of its own and
// returns the snapshot's version.
func (f *flow) copyVersioned(ctx context.Context, t mirrorTable) (uint64, error) {
	name := t.source.String()
	if err := f.store.SetTableResync(ctx, f.m.Name, name, catalog.ResyncInProgress, ""); err != nil {
		return 0, err
	}
	if err := f.setStep(ctx, catalog.StepCopying, t); err != nil {
		return 0, err
	}
	src, dst, closeAll, err := f.open(ctx, "sluice-resync")
	if err != nil {
		return 0, err
	}
	defer closeAll()
	// Claimed (the stream's epoch, already recorded: nothing changes), so
	// that this connection's shadow checks the epoch.
	if err := f.fence(ctx, dst); err != nil {
		return 0, err
	}
	sw, ok := dst.(connectors.ShadowSwapper)
	if !ok {
		return 0, f.unsupported("RESYNC TABLE")
	}
	snapshotter, ok := src.(connectors.TableSnapshotter)
	if !ok {
		return 0, &UserError{Err: fmt.Errorf("RESYNC TABLE is not supported for %s sources", f.srcType)}
	}
	snap, err := snapshotter.TableSnapshot(ctx)
	if err != nil {
		return 0, fmt.Errorf("snapshot for the copy: %w", err)
	}
	defer snap.Close()
	// The table as it is now rather than when the stream started: a column
	// the source added before the snapshot has values in it.
	ts, err := src.Describe(ctx, t.source, t.exclude)
	if err != nil {
		return 0, err
	}
	d := f.destTable(t, ts)
	d.Dest = t.live
	shadow, err := sw.CreateShadow(ctx, d, f.reserved())
	if err != nil {
		return 0, err
	}
	if err := dst.ForgetLoad(ctx, t.source); err != nil {
		return 0, err
	}
	_ = f.store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("copying %s into %s as of %s", name, shadow, f.display(snap.Position)))
	one := t
	one.dest = shadow
	one.catalog.Partitions = nil
	if err := f.loadTables(ctx, src, dst, snap.Name, snap.Version, []mirrorTable{one}, []*connectors.TableSchema{ts}); err != nil {
		return 0, err
	}
	if err := dst.ForgetLoad(ctx, t.source); err != nil {
		return 0, err
	}
	// The batcher carries the live table's rows newer than the snapshot
	// over, then swaps (versionedDone).
	return snap.Version, f.setStep(ctx, catalog.StepCatchingUp, t)
}

// versionedDone finishes a table copy in the batcher, between batches:
// the shadow table gets what the live one received since the copy's
// snapshot, and replaces it. Nothing writes to the live table meanwhile.
func (b *batcher) versionedDone(ctx context.Context, d versionedCopy) error {
	f, store := b.f, b.f.store
	if d.err != nil {
		if ctx.Err() == nil {
			_ = store.SetTableResync(ctx, f.m.Name, d.table.String(), catalog.ResyncFailed, d.err.Error())
		}
		if refused(d.err) {
			b.vr.copying--
			return f.setStep(ctx, catalog.StepStreaming, b.vr.tables[d.table])
		}
		return fmt.Errorf("resync of %s: %w", d.table, d.err)
	}
	b.vr.copying--
	t := b.vr.tables[d.table]
	began := time.Now()
	if err := f.swapVersioned(ctx, b.dst, t, d.version); err != nil {
		_ = store.SetTableResync(ctx, f.m.Name, d.table.String(), catalog.ResyncFailed, err.Error())
		return fmt.Errorf("resync of %s: %w", d.table, err)
	}
	if err := store.SetTableResync(ctx, f.m.Name, d.table.String(), catalog.ResyncDone, ""); err != nil {
		return err
	}
	if err := f.setStep(ctx, catalog.StepStreaming, t); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "table resync done", "table", d.table.String())
	return store.AddEvent(ctx, f.m.Name, "resync", fmt.Sprintf("swapped the resynced copy of %s in for %s in %s",
		d.table, t.dest, time.Since(began).Round(time.Millisecond)))
}

// swapVersioned swaps t's loaded shadow in for its live table, carrying
// the live table's rows newer than version over first.
func (f *flow) swapVersioned(ctx context.Context, dst connectors.Destination, t mirrorTable, version uint64) error {
	sw, ok := dst.(connectors.ShadowSwapper)
	if !ok {
		return f.unsupported("RESYNC TABLE")
	}
	shadows, err := sw.Shadows(ctx)
	if err != nil {
		return err
	}
	if _, has := shadows[t.live]; !has {
		return fmt.Errorf("the shadow table of %s disappeared before the swap: run RESYNC TABLE again", t.live)
	}
	if err := f.setStep(ctx, catalog.StepSwapping, t); err != nil {
		return err
	}
	d := connectors.DestTable{Source: t.source, Dest: t.live, OrderBy: t.catalog.OrderBy,
		SoftDeleteColumn: f.opt.SoftDeleteColumn, SyncedAtColumn: f.opt.SyncedAtColumn}
	_, err = sw.SwapIn(ctx, []connectors.Swap{{Table: d, NewerThan: version}})
	return err
}

// pollVersionedResyncs restarts the stream when a table resync was asked
// for and no copy runs (copies start with the stream).
func (b *batcher) pollVersionedResyncs(ctx context.Context) error {
	if b.vr.copying > 0 {
		return nil
	}
	m, err := b.store.GetMirror(ctx, b.f.m.Name)
	if err != nil {
		return err
	}
	for _, t := range m.Tables {
		if t.ResyncStatus == catalog.ResyncPending {
			return errRestart
		}
	}
	return nil
}
