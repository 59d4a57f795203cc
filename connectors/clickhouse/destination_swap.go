package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/sluicedb/sluice/connectors"
)

// Shadow-and-swap on ClickHouse (connectors.ShadowSwapper), for a table
// resync and a full resync alike: rows are versions, so a shadow loaded
// under a snapshot gets, before the swap, the live table's deleted rows
// and (Swap.NewerThan) its rows of a later version, and carrying a row
// twice (a crash before the swap) leaves one row. See swap.go and owned.go.

// CreateShadow makes an empty shadow table of live table t.Dest from t
// (its sorting key and column names), under a free name none of reserved
// takes, recorded as Sluice's own and marked (CreateOwned); the shadow an
// earlier attempt recorded for it is dropped, nothing else. An error wraps
// connectors.ErrNoFreeName when every candidate name is taken. A claimed
// Destination whose lease epoch was superseded (Fence) makes nothing: an
// error wrapping connectors.ErrFenced.
func (d *Destination) CreateShadow(ctx context.Context, t connectors.DestTable, reserved []connectors.TableName) (connectors.TableName, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return connectors.TableName{}, err
	}
	if err := d.checkEpoch(ctx); err != nil {
		return connectors.TableName{}, err
	}
	o, err := CreateOwned(ctx, d.conn, d.cfg.Database, d.mirror, t.Dest, reserved,
		func(name connectors.TableName, marker string) (string, error) {
			opts := tableOptions(t)
			opts.Marker = marker
			return CreateTableDDL(name, t.Schema, d.info, opts)
		})
	if err != nil {
		return connectors.TableName{}, err
	}
	return o.Name, nil
}

// Shadows returns the shadow tables recorded for the mirror that still
// carry their marker, by live table. It makes the metadata tables if
// missing, and otherwise only reads.
func (d *Destination) Shadows(ctx context.Context) (map[connectors.TableName]connectors.TableName, error) {
	owned, err := d.ownedShadows(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[connectors.TableName]connectors.TableName, len(owned))
	for live, o := range owned {
		out[live] = o.Name
	}
	return out, nil
}

func (d *Destination) ownedShadows(ctx context.Context) (map[connectors.TableName]OwnedTable, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return nil, err
	}
	return OwnedTables(ctx, d.conn, d.cfg.Database, d.mirror, RoleShadow)
}

// CheckSwappable returns nil: nothing on ClickHouse stops a swap (as
// today's resync, which swaps whatever depends on the live table).
func (d *Destination) CheckSwappable(ctx context.Context, live connectors.TableName) error {
	return nil
}

// SwapIn puts each swap's shadow in place of its live table (SwapTables:
// EXCHANGE TABLES where the server has it, else one multi-table RENAME)
// and drops the replaced tables. Before, for each swap whose shadow and
// live table both exist: with NewerThan (a table resync), the shadow gets
// the columns the source added to the live table meanwhile
// (AddColumnsLike) and the live table's rows of a later version and its
// deleted rows (CarryNewerRows); without (a full resync, whose shadows
// have the source's columns as they are), only its deleted rows
// (CarryDeletedRows). Nothing may write to the live tables meanwhile.
//
// After a crash: when no swap's shadow is recorded, the swap was done and
// SwapIn only drops the replaced tables left behind. When some are
// recorded and others not, a swap under way (replaced tables recorded,
// role old) is finished; otherwise the missing shadows were dropped by
// someone else, and SwapIn returns an error wrapping
// connectors.ErrShadowLost and changes nothing. The report is empty.
// Swap.EndResync changes nothing: ClickHouse keeps no table positions.
//
// A claimed Destination (Fence) checks its lease epoch before it changes
// anything and again just before each statement that puts a shadow in:
// once a later epoch claimed the mirror, SwapIn returns an error wrapping
// connectors.ErrFenced, and a swap refused at its first check changed
// nothing (fence.go says how small the window after the last check is).
func (d *Destination) SwapIn(ctx context.Context, swaps []connectors.Swap) (connectors.SwapReport, error) {
	shadows, err := d.ownedShadows(ctx)
	if err != nil {
		return connectors.SwapReport{}, err
	}
	if err := d.checkEpoch(ctx); err != nil {
		return connectors.SwapReport{}, err
	}
	var missing []string
	for _, s := range swaps {
		if _, has := shadows[s.Table.Dest]; !has {
			missing = append(missing, s.Table.Dest.String())
		}
	}
	if len(missing) > 0 && len(missing) < len(swaps) {
		old, err := OwnedTables(ctx, d.conn, d.cfg.Database, d.mirror, RoleOld)
		if err != nil {
			return connectors.SwapReport{}, err
		}
		if len(old) == 0 {
			// No swap under way: the shadows were dropped by someone else.
			return connectors.SwapReport{}, fmt.Errorf("shadow table(s) of %s missing while others were not swapped in yet: %w",
				strings.Join(missing, ", "), connectors.ErrShadowLost)
		}
	}
	lives := make([]connectors.TableName, 0, len(swaps))
	for _, s := range swaps {
		live := s.Table.Dest
		lives = append(lives, live)
		sh, has := shadows[live]
		if !has {
			continue // swapped before a restart
		}
		exists, err := TableExists(ctx, d.conn, live)
		if err != nil {
			return connectors.SwapReport{}, err
		}
		if !exists {
			continue // nothing to carry
		}
		if err := d.carry(ctx, s, sh.Name); err != nil {
			return connectors.SwapReport{}, err
		}
	}
	// The live tables are reserved: a missing one is about to be moved in.
	if err := swapTables(ctx, d.conn, d.info, d.cfg.Database, d.mirror, lives, slices.Clone(lives), d.checkEpoch); err != nil {
		return connectors.SwapReport{}, err
	}
	return connectors.SwapReport{}, nil
}

// carry copies into shadow what it must keep of s's live table. A crash
// before the swap repeats it: the same rows again, which
// ReplacingMergeTree collapses.
func (d *Destination) carry(ctx context.Context, s connectors.Swap, shadow connectors.TableName) error {
	live := s.Table.Dest
	deleted := DefaultDeletedColumn
	if s.Table.SoftDeleteColumn != "" {
		deleted = s.Table.SoftDeleteColumn
	}
	if s.NewerThan > 0 {
		// A table resync: the live table kept streaming while the shadow
		// loaded, and gained the columns the source added meanwhile. (A
		// full resync's shadows are made from the source's definitions as
		// they are, columns dropped there included: nothing to add.)
		if err := AddColumnsLike(ctx, d.conn, live, shadow); err != nil {
			return err
		}
		return CarryNewerRows(ctx, d.conn, live, shadow, DefaultVersionColumn, deleted, s.NewerThan)
	}
	return CarryDeletedRows(ctx, d.conn, live, shadow, deleted)
}
