package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Shadow tables and swaps of the Postgres destination
// (connectors.ShadowSwapper), over owned.go and swap*.go.

// swapLockTimeout bounds how long a swap waits for a lock: while it waits,
// readers queue behind it. A swap that times out is retried.
const swapLockTimeout = 5 * time.Second

// CreateShadow implements connectors.ShadowSwapper: CreateOwned with a
// table made from t's source definition (CreateTable, with the soft-delete
// and synced-at columns), under the first free name for t.Dest that none
// of reserved takes, recorded as Sluice's own in the same transaction. A
// shadow recorded for t.Dest before is dropped, nothing else. An error
// wraps connectors.ErrNoFreeName when every name is taken. A claimed
// Destination whose lease epoch was superseded (Fence) is refused in that
// transaction (checkEpoch): an error wrapping connectors.ErrFenced,
// nothing dropped or made.
func (d *Destination) CreateShadow(ctx context.Context, t connectors.DestTable, reserved []connectors.TableName) (connectors.TableName, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return connectors.TableName{}, err
	}
	o, err := CreateOwned(ctx, d.conn, d.meta, d.mirror, t.Dest, reserved, func(tx pgx.Tx, name connectors.TableName) error {
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		if err := CreateTable(ctx, tx, name, t.Schema, t.SoftDeleteColumn, t.SyncedAtColumn); err != nil {
			return fmt.Errorf("create shadow table %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return connectors.TableName{}, err
	}
	return o.Name, nil
}

// Shadows implements connectors.ShadowSwapper: the tables OwnedTables
// finds (those recorded whose name still has the recorded OID), by live
// table.
func (d *Destination) Shadows(ctx context.Context) (map[connectors.TableName]connectors.TableName, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	owned, err := OwnedTables(ctx, d.conn, d.meta, d.mirror)
	if err != nil {
		return nil, err
	}
	out := make(map[connectors.TableName]connectors.TableName, len(owned))
	for live, o := range owned {
		out[live] = o.Name
	}
	return out, nil
}

// CheckSwappable implements connectors.ShadowSwapper (CheckSwappable): nil
// when live does not exist; an error, not wrapping ErrNotSwappable, when
// its name is taken by a relation that is not a table.
func (d *Destination) CheckSwappable(ctx context.Context, live connectors.TableName) error {
	exists, err := TableExists(ctx, d.conn, live)
	if err != nil || !exists {
		return err
	}
	return CheckSwappable(ctx, d.conn, live)
}

// SwapIn implements connectors.ShadowSwapper. Before the swap, each shadow
// gets the indexes made on its live table since it was indexed
// (BuildShadowIndexes). Then, in one transaction whose statements wait at
// most swapLockTimeout for a lock, for each swap: a missing live table is
// replaced by its shadow (RenameOwned); otherwise the rows soft-deleted in
// the live table that the shadow lacks are carried into it
// (CarrySoftDeleted, when the table has a SoftDeleteColumn) and the shadow
// takes the live table's place with its dependents (SwapOwned); the record
// of the shadow is forgotten, and with Swap.EndResync the table's resync
// state too. Swap.NewerThan is not used: a Postgres destination's table
// resync catches up from its copy's position before the swap, so the
// shadow has every change. When no swap's shadow is recorded, the swap
// was done before (its transaction forgot the records) and SwapIn does
// nothing. An error wraps connectors.ErrShadowLost when some shadow is not
// recorded while others are, or is no longer the one recorded; nothing was
// swapped then. The report's notes say which live tables were missing, which
// foreign keys were re-added NOT VALID (to validate: Validate) and which
// views were recreated; Analyze lists every table swapped in (a shadow is
// not analyzed before: FinishLoad).
func (d *Destination) SwapIn(ctx context.Context, swaps []connectors.Swap) (connectors.SwapReport, error) {
	var rep connectors.SwapReport
	if err := d.ensureMeta(ctx); err != nil {
		return rep, err
	}
	owned, err := OwnedTables(ctx, d.conn, d.meta, d.mirror)
	if err != nil {
		return rep, err
	}
	recorded := 0
	for _, s := range swaps {
		if _, has := owned[s.Table.Dest]; has {
			recorded++
		}
	}
	if recorded == 0 {
		// Swapped before (a crash after the commit, which forgot every
		// record): nothing is left to do.
		return rep, nil
	}
	for _, s := range swaps {
		live := s.Table.Dest
		o, has := owned[live]
		if !has {
			return rep, fmt.Errorf("swap in the shadow table of %s: %w", live, ErrNoShadow)
		}
		// Indexes made on the live table since the shadow was indexed.
		err := d.buildShadowIndexes(ctx, live, o.Name)
		if err != nil && !errors.Is(err, ErrNoShadow) && !errors.Is(err, ErrTableNotFound) {
			return rep, fmt.Errorf("index %s before the swap: %w", o.Name, err)
		}
	}
	err = pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		rep = connectors.SwapReport{}
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		if err := SetLockTimeout(ctx, tx, swapLockTimeout); err != nil {
			return err
		}
		for _, s := range swaps {
			if err := d.swapOne(ctx, tx, owned[s.Table.Dest], s, &rep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return connectors.SwapReport{}, err
	}
	return rep, nil
}

// swapOne puts shadow o in place of its live table in tx (see SwapIn) and
// adds to rep what it did.
func (d *Destination) swapOne(ctx context.Context, tx pgx.Tx, o OwnedTable, s connectors.Swap, rep *connectors.SwapReport) error {
	live, shadow := o.Live, o.Name
	exists, err := TableExists(ctx, tx, live)
	if err != nil {
		return err
	}
	if !exists {
		if err := RenameOwned(ctx, tx, o); err != nil {
			return err
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s was missing and was created", live))
	} else {
		if col := s.Table.SoftDeleteColumn; col != "" {
			if err := CarrySoftDeleted(ctx, tx, live, shadow, s.Table.Schema.PrimaryKey, col); err != nil {
				return err
			}
		}
		r, err := swapOwnedRetiring(ctx, tx, o, d.meta, d.mirror)
		if errors.Is(err, ErrNoShadow) {
			return fmt.Errorf("shadow table %s is missing: %w", shadow, err)
		}
		if err != nil {
			return fmt.Errorf("swap %s in for %s: %w", shadow, live, err)
		}
		if len(r.ForeignKeys) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("foreign keys re-added NOT VALID: %s", strings.Join(r.ForeignKeys, ", ")))
		}
		if len(r.Views) > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("views recreated: %s", strings.Join(r.Views, ", ")))
		}
		rep.Validate = append(rep.Validate, r.Validate...)
	}
	// Its statistics are collected after the swap (Analyze).
	rep.Analyze = append(rep.Analyze, live)
	if err := ForgetOwned(ctx, tx, d.meta, d.mirror, live); err != nil {
		return err
	}
	if s.EndResync {
		return DeleteTableState(ctx, tx, d.meta, d.mirror, s.Table.Source)
	}
	return nil
}
