package replication

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// setup is the SETUP phase: what the source's change stream needs
// (a publication), the destination's metadata and tables, then the stream's
// origin (a replication slot), whose consistent snapshot the initial load
// reads at once while it is open. Every action is idempotent, so a setup
// killed half-way is simply run again. A full resync makes the stream
// anew and loads into shadow tables made from the source's current
// definitions.
func (f *flow) setup(ctx context.Context) error {
	src, dst, closeAll, err := f.open(ctx, "sluice-setup")
	if err != nil {
		return err
	}
	defer closeAll()

	tables := f.tables()
	resync := f.m.Resync != ""
	// A full resync replaces the stream, so that source schema changes and
	// a lost stream are picked up. The old slot stays until StartMirror
	// replaces it, so the lag monitor measures it meanwhile.
	if err := src.Prepare(ctx, f.spec(), sourcesOf(tables), resync); err != nil {
		return err
	}
	if _, err := dst.Applied(ctx); err != nil {
		return err
	}
	// Stale appliers (of a run before a RESYNC MIRROR) apply nothing from
	// here on.
	if err := f.fence(ctx, dst); err != nil {
		return err
	}
	var sw connectors.ShadowSwapper
	if resync {
		var ok bool
		if sw, ok = dst.(connectors.ShadowSwapper); !ok {
			return f.unsupported("RESYNC MIRROR")
		}
		if err := dst.ForgetLoad(ctx, connectors.TableName{}); err != nil {
			return err
		}
	}
	f.shadows = make(map[connectors.TableName]connectors.TableName)
	for _, t := range tables {
		ts, err := src.Describe(ctx, t.source, t.exclude)
		if err != nil {
			return err
		}
		if resync {
			// The shadow table is made anew from the source's definition,
			// under a free name, and recorded as Sluice's own; the one an
			// earlier attempt recorded is dropped.
			d := f.destTable(t, ts)
			d.Dest = t.live
			shadow, err := sw.CreateShadow(ctx, d, f.reserved())
			if err != nil {
				return fmt.Errorf("create shadow table of %s: %w", t.live, err)
			}
			f.shadows[t.live] = shadow
			continue
		}
		if err := dst.CreateTable(ctx, f.destTable(t, ts)); err != nil {
			return fmt.Errorf("create destination table %s: %w", t.dest, err)
		}
	}
	snap, err := f.startMirror(ctx, src)
	if err != nil {
		return err
	}
	defer snap.Close()
	return f.snapshot(ctx, snap)
}

// startMirror makes the mirror's stream origin (replacing one a setup that
// died before recording it made) and records its consistent point; the
// mirror moves to SNAPSHOT.
func (f *flow) startMirror(ctx context.Context, src connectors.Source) (*connectors.Snapshot, error) {
	snap, err := src.StartMirror(ctx, f.spec())
	if err != nil {
		return nil, err
	}
	err = f.store.SetConsistentPosition(ctx, f.m.Name, snap.Position, snap.Version, f.display(snap.Position))
	if err == nil {
		err = f.store.SetPhase(ctx, f.m.Name, catalog.PhaseSnapshot)
	}
	if err != nil {
		snap.Close()
		return nil, err
	}
	f.m.Phase, f.m.ConsistentPosition, f.m.ConsistentVersion = catalog.PhaseSnapshot, snap.Position, snap.Version
	f.log.InfoContext(ctx, "change stream started", "slot", f.opt.Slot, "position", f.display(snap.Position))
	return snap, nil
}

func sourcesOf(tables []mirrorTable) []connectors.TableName {
	out := make([]connectors.TableName, len(tables))
	for i, t := range tables {
		out[i] = t.source
	}
	return out
}

// adoptShadows sets f.shadows from the shadow tables recorded on the
// destination (live table to shadow name), and sends the resync back to
// SETUP when one of the mirror's tables has none.
func (f *flow) adoptShadows(ctx context.Context, dst connectors.Destination) error {
	sw, ok := dst.(connectors.ShadowSwapper)
	if !ok {
		return f.unsupported("RESYNC MIRROR")
	}
	if _, err := dst.Applied(ctx); err != nil {
		return err
	}
	shadows, err := sw.Shadows(ctx)
	if err != nil {
		return err
	}
	f.shadows = shadows
	var missing []connectors.TableName
	for _, t := range f.tables() {
		if t.dest == (connectors.TableName{}) {
			missing = append(missing, t.live)
		}
	}
	if len(missing) > 0 {
		return f.restartResync(ctx, connectors.JoinNames(missing))
	}
	return nil
}

// restartResync sends a full resync whose shadow tables are gone back to
// SETUP, which makes them anew.
func (f *flow) restartResync(ctx context.Context, missing string) error {
	if err := f.store.SetPhase(ctx, f.m.Name, catalog.PhaseSetup); err != nil {
		return err
	}
	_ = f.store.AddEvent(ctx, f.m.Name, "resync", "shadow tables missing ("+missing+"): the resync starts over")
	return fmt.Errorf("shadow tables of %s are missing: the resync starts over", missing)
}
