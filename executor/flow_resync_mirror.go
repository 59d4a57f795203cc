package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/catalog"
	"github.com/sluicedb/sluice/connectors"
	"github.com/sluicedb/sluice/connectors/postgres"
)

// Full-mirror resync (RESYNC MIRROR). The mirror runs SETUP and SNAPSHOT
// again, with a new slot and publication, into shadow tables
// (each under a free name, recorded as Sluice's own: postgres.CreateOwned)
// made from the source's current definitions, while
// the live tables stay as they are; then the RESYNC phase (swapAll) swaps
// every shadow table in, in one destination transaction, and CDC streams
// from the new slot's consistent point. Each phase is resumable like those
// of a new mirror; the swap is atomic, so after a crash either every table
// or none was swapped.

// swapAll is the RESYNC phase: soft-deleted rows are carried from the live
// tables into the shadow tables, then all shadow tables replace the live
// ones in one destination transaction.
func (f *flow) swapAll(ctx context.Context) error {
	src, dst, closeConns, err := f.connect(ctx, "sluice-resync")
	if err != nil {
		return err
	}
	defer closeConns()
	tables := f.tables()
	if err := f.setStep(ctx, catalog.StepSwapping, tables...); err != nil {
		return err
	}
	schemas := make([]*connectors.TableSchema, len(tables))
	for i, t := range tables {
		if schemas[i], err = postgres.DescribeTable(ctx, src, t.source, t.exclude); err != nil {
			return err
		}
	}
	if err := postgres.EnsureMetadata(ctx, dst, f.meta); err != nil {
		return err
	}
	// Only the shadow tables recorded as Sluice's own are swapped in: a
	// table of the same name that Sluice did not create is never touched.
	owned, err := postgres.OwnedTables(ctx, dst, f.meta, f.m.Name)
	if err != nil {
		return err
	}
	var missing []connectors.TableName
	for _, t := range tables {
		if _, has := owned[t.live]; !has {
			missing = append(missing, t.live)
		}
	}
	if len(missing) > 0 && len(missing) < len(tables) {
		// The swap is all or none: shadows gone while others are still
		// there were dropped by someone else.
		return f.restartResync(ctx, tableSet(missing))
	}
	began := time.Now()
	var notes, validate []string
	if len(missing) == 0 {
		for _, t := range tables {
			// Indexes made on the live tables since the shadows were indexed.
			err := postgres.BuildShadowIndexes(ctx, dst, t.live, owned[t.live].Name)
			if err != nil && !errors.Is(err, postgres.ErrNoShadow) && !errors.Is(err, postgres.ErrTableNotFound) {
				return err
			}
		}
		// All or none: a crash after the commit finds no shadow table.
		err = pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
			if err := postgres.SetLockTimeout(ctx, tx, swapLockTimeout); err != nil {
				return err
			}
			for i, t := range tables {
				n, v, err := f.swapOne(ctx, tx, owned[t.live], schemas[i])
				if err != nil {
					return err
				}
				notes = append(notes, n...)
				validate = append(validate, v...)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("swap resynced tables in: %w", err)
		}
	}
	msg := fmt.Sprintf("swapped %d resynced table(s) in, in %s", len(tables), time.Since(began).Round(time.Millisecond))
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	if err := f.ex.cfg.Store.AddEvent(ctx, f.m.Name, "resync", msg); err != nil {
		return err
	}
	f.log.InfoContext(ctx, "full resync: tables swapped in", "tables", len(tables))
	if len(validate) > 0 {
		if err := f.setStep(ctx, catalog.StepValidatingForeignKeys, tables...); err != nil {
			return err
		}
	}
	if err := f.validate(ctx, dst, validate); err != nil {
		return err
	}
	return f.loaded(ctx, src, dst, tables, schemas)
}

// swapOne replaces o.Live by its shadow table o in tx and forgets o's
// record. A live table that is gone is simply replaced.
func (f *flow) swapOne(ctx context.Context, tx pgx.Tx, o postgres.OwnedTable, ts *connectors.TableSchema) (notes, validate []string, err error) {
	live, shadow := o.Live, o.Name
	exists, err := postgres.TableExists(ctx, tx, live)
	if err != nil {
		return nil, nil, err
	}
	if !exists {
		if err := postgres.RenameOwned(ctx, tx, o); err != nil {
			return nil, nil, err
		}
		if err := postgres.ForgetOwned(ctx, tx, f.meta, f.m.Name, live); err != nil {
			return nil, nil, err
		}
		return []string{fmt.Sprintf("%s was missing and was created", live)}, nil, nil
	}
	if f.cfg.SoftDeleteColumn != "" {
		if err := postgres.CarrySoftDeleted(ctx, tx, live, shadow, ts.PrimaryKey, f.cfg.SoftDeleteColumn); err != nil {
			return nil, nil, err
		}
	}
	rep, err := postgres.SwapOwned(ctx, tx, o)
	if errors.Is(err, postgres.ErrNoShadow) {
		return nil, nil, fmt.Errorf("shadow table %s is missing while others were not swapped in yet: %w", shadow, err)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := postgres.ForgetOwned(ctx, tx, f.meta, f.m.Name, live); err != nil {
		return nil, nil, err
	}
	if len(rep.ForeignKeys) > 0 {
		notes = append(notes, fmt.Sprintf("foreign keys re-added NOT VALID: %s", strings.Join(rep.ForeignKeys, ", ")))
	}
	if len(rep.Views) > 0 {
		notes = append(notes, fmt.Sprintf("views recreated: %s", strings.Join(rep.Views, ", ")))
	}
	return notes, rep.Validate, nil
}
