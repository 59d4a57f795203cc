package executor

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// setup is the SETUP phase: publication, destination tables, then the
// replication slot, whose exported snapshot the initial load uses at once
// while the connection that made it stays open. Every action is idempotent,
// so a setup killed half-way is simply run again.
func (f *flow) setup(ctx context.Context) error {
	src, dst, closeConns, err := f.connect(ctx, "sluice-setup")
	if err != nil {
		return err
	}
	defer closeConns()

	tables := f.tables()
	sources := make([]connectors.TableName, len(tables))
	for i, t := range tables {
		sources[i] = t.source
	}
	resync := f.m.Resync != ""
	if resync {
		// A full resync replaces the slot and the publication, so that
		// source schema changes and an invalidated slot are picked up. The
		// old slot stays until createSlot replaces it, so the lag monitor
		// measures it meanwhile.
		if err := postgres.DropPublication(ctx, src, f.cfg.Publication); err != nil {
			return err
		}
	}
	if err := postgres.CreatePublication(ctx, src, f.cfg.Publication, sources); err != nil {
		return err
	}
	if err := postgres.EnsureMetadata(ctx, dst, f.meta); err != nil {
		return err
	}
	if resync {
		if err := postgres.ClearMirror(ctx, dst, f.meta, f.m.Name); err != nil {
			return err
		}
	}
	f.shadows = make(map[connectors.TableName]connectors.TableName)
	for _, t := range tables {
		ts, err := postgres.DescribeTable(ctx, src, t.source, t.exclude)
		if err != nil {
			return err
		}
		if resync {
			// The shadow table is made anew from the source's definition,
			// under a free name, and recorded as Sluice's own; the one an
			// earlier attempt recorded is dropped.
			o, err := postgres.CreateOwned(ctx, dst, f.meta, f.m.Name, t.live, f.reserved(), func(tx pgx.Tx, name connectors.TableName) error {
				if err := postgres.CreateTable(ctx, tx, name, ts, f.cfg.SoftDeleteColumn, f.cfg.SyncedAtColumn); err != nil {
					return fmt.Errorf("create shadow table %s: %w", name, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			f.shadows[t.live] = o.Name
			continue
		}
		if err := f.createDestination(ctx, dst, t.dest, ts); err != nil {
			return err
		}
	}
	slot, err := f.createSlot(ctx, src)
	if err != nil {
		return err
	}
	defer slot.close()
	return f.snapshot(ctx, slot.Snapshot)
}

// openSlot is a replication slot just made, whose exported snapshot lives
// while its connection is open.
type openSlot struct {
	postgres.Slot
	close func()
}

// createSlot replaces the mirror's slot (one with its name was made by a
// setup that died before recording it) and records its consistent point;
// the mirror moves to SNAPSHOT.
func (f *flow) createSlot(ctx context.Context, src *pgx.Conn) (*openSlot, error) {
	if err := postgres.DropSlot(ctx, src, f.cfg.Slot); err != nil {
		return nil, err
	}
	repl, err := f.src.ConnectReplication(ctx, "sluice-snapshot")
	if err != nil {
		return nil, err
	}
	slot, err := postgres.CreateSlot(ctx, repl, f.cfg.Slot)
	if err == nil {
		err = f.ex.cfg.Store.SetConsistentPosition(ctx, f.m.Name, postgres.LSNPosition(slot.ConsistentLSN), slot.ConsistentLSN)
	}
	if err == nil {
		err = f.ex.cfg.Store.SetPhase(ctx, f.m.Name, catalog.PhaseSnapshot)
	}
	if err != nil {
		repl.Close(context.Background())
		return nil, err
	}
	f.m.Phase = catalog.PhaseSnapshot
	f.m.ConsistentPosition, f.m.ConsistentVersion = postgres.LSNPosition(slot.ConsistentLSN), slot.ConsistentLSN
	f.log.InfoContext(ctx, "replication slot created", "slot", slot.Name, "lsn", catalog.FormatLSN(slot.ConsistentLSN))
	return &openSlot{Slot: slot, close: func() { repl.Close(context.Background()) }}, nil
}

// createDestination creates the destination table unless an earlier run of
// this setup already did.
func (f *flow) createDestination(ctx context.Context, dst *pgx.Conn, dest connectors.TableName, ts *connectors.TableSchema) error {
	exists, err := postgres.TableExists(ctx, dst, dest)
	if err != nil || exists {
		return err
	}
	return pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
		if err := postgres.CreateTable(ctx, tx, dest, ts, f.cfg.SoftDeleteColumn, f.cfg.SyncedAtColumn); err != nil {
			return fmt.Errorf("create destination table %s: %w", dest, err)
		}
		return nil
	})
}

// mirrorTable is a table mapping of the flow's mirror.
type mirrorTable struct {
	// dest is where the flow writes: live, or its shadow table while a
	// full resync loads (f.shadows; the zero name when it has none).
	source, dest, live connectors.TableName
	exclude            []string
	catalog            catalog.MirrorTable
}

func (f *flow) tables() []mirrorTable {
	out := make([]mirrorTable, len(f.m.Tables))
	loading := f.m.Resync != "" && (f.m.Phase == catalog.PhaseSetup || f.m.Phase == catalog.PhaseSnapshot)
	for i, t := range f.m.Tables {
		src, _ := connectors.ParseTableName(t.Source)
		dst, _ := connectors.ParseTableName(t.Destination)
		out[i] = mirrorTable{source: src, dest: dst, live: dst, exclude: t.Exclude, catalog: t}
		if loading {
			out[i].dest = f.shadows[dst]
		}
	}
	return out
}

// reserved lists the mirror's live destination tables: a temporary table
// never takes one of their names, even when the table is missing.
func (f *flow) reserved() []connectors.TableName {
	var out []connectors.TableName
	for _, t := range f.m.Tables {
		if dst, err := connectors.ParseTableName(t.Destination); err == nil {
			out = append(out, dst)
		}
	}
	return out
}

// adoptShadows sets f.shadows from the shadow tables recorded on the
// destination (live table to shadow name), and sends the resync back to
// SETUP when one of the mirror's tables has none.
func (f *flow) adoptShadows(ctx context.Context, shadows map[connectors.TableName]connectors.TableName) error {
	f.shadows = shadows
	if missing := f.shadowsMissing(); missing != "" {
		return f.restartResync(ctx, missing)
	}
	return nil
}

// shadowsMissing names the tables of a full resync that have no shadow
// table in f.shadows ("" when all have one).
func (f *flow) shadowsMissing() string {
	var missing []connectors.TableName
	for _, t := range f.tables() {
		if t.dest == (connectors.TableName{}) {
			missing = append(missing, t.live)
		}
	}
	return tableSet(missing)
}

// restartResync sends a full resync whose shadow tables are gone back to
// SETUP, which makes them anew.
func (f *flow) restartResync(ctx context.Context, missing string) error {
	if err := f.ex.cfg.Store.SetPhase(ctx, f.m.Name, catalog.PhaseSetup); err != nil {
		return err
	}
	_ = f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "resync", "shadow tables missing ("+missing+"): the resync starts over")
	return fmt.Errorf("shadow tables of %s are missing: the resync starts over", missing)
}
