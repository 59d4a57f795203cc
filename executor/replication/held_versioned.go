package replication

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
)

// Held tables on a destination whose rows carry versions
// (connectors.VersionedRows: ClickHouse), which keeps no position per
// table. A table is held as on Postgres (its changes are dropped, the
// others stream), but the catalog alone records it (mirror_tables.status)
// and nothing holds the source back: the table comes back the way a table
// resync does there, by a copy under a snapshot of its own into a shadow
// table while the live one streams again, then a swap that carries the
// live table's newer rows (resync_versioned.go). RESUME MIRROR m TABLE t
// asks for that copy (RESYNC TABLE does the same); a dropped destination
// table is created again first. Nothing is lost: what the table missed
// while held is in the copy; rows written twice converge by version.

// planVersionedHolds returns the batcher's held tables (no positions: no
// acknowledgement limit) from the catalog's holds, holding the tables a
// pause was asked for, and ending the hold of those a resync was asked
// for (recreating their destination table when it is gone).
func (f *flow) planVersionedHolds(ctx context.Context, dst connectors.Destination,
	schemas map[connectors.TableName]*connectors.TableSchema) (*resyncs, error) {
	holds, err := f.store.TableHolds(ctx, f.m.Name)
	if err != nil {
		return nil, err
	}
	rs := newResyncs()
	for _, t := range f.tables() {
		name := t.source.String()
		h := holds[name]
		held := h.Status == catalog.TableStatusPaused || h.Status == catalog.TableStatusFailed
		resyncing := t.catalog.ResyncStatus == catalog.ResyncPending || t.catalog.ResyncStatus == catalog.ResyncInProgress
		switch {
		case resyncing && (held || h.Request != ""):
			if err := f.store.EndTableHold(ctx, f.m.Name, name, fmt.Sprintf("%s is copied again: held no more", name)); err != nil {
				return nil, err
			}
			if err := f.recreate(ctx, dst, t, schemas[t.source]); err != nil {
				return nil, err
			}
		case resyncing:
		case held || h.Request == catalog.HoldPause:
			if !held || h.Request == catalog.HoldPause {
				status := h.Status
				if !held {
					status = catalog.TableStatusPaused
				}
				if err := f.store.SetTableHeld(ctx, f.m.Name, name, status, h.Error); err != nil {
					return nil, err
				}
			}
			if err := f.setStepNames(ctx, StepHeld, name); err != nil {
				return nil, err
			}
			rs.held[t.source] = "" // no position: nothing held back
		}
	}
	return rs, nil
}

// copyOf returns the table copy of t under way, if any (nil r: none).
func (r *versionedResyncs) copyOf(t connectors.TableName) (mirrorTable, bool) {
	if r == nil {
		return mirrorTable{}, false
	}
	mt, ok := r.tables[t]
	return mt, ok
}
