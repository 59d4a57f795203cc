package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// Swapping resynced tables in (shadow and swap), all on the destination
// database. A shadow table made with CreateOwned is loaded by the caller;
// then, with nothing writing to the live table:
//
//  1. CarryNewerRows (table resync) or CarryDeletedRows (full resync)
//     copies into the shadow what the live table has that the copy lacks;
//  2. SwapTables puts every shadow in its live table's place and drops the
//     replaced tables.
//
// Rows are versions, so carrying a row twice (a crash before the swap)
// leaves one row after ReplacingMergeTree collapses them.

// CarryNewerRows copies into shadow the rows of live with a version
// (column version) above lsn or marked deleted (column deleted = 1), for
// the columns both tables have: what live received after the snapshot at
// lsn the shadow was loaded under, and the deletions it holds. Rows a
// sorting-key move superseded (deleted = DeletedMoved) go first, so the
// row that replaced one is the later insert. Repeatable.
func CarryNewerRows(ctx context.Context, conn driver.Conn, live, shadow connectors.TableName, version, deleted string, lsn uint64) error {
	list, err := commonColumns(ctx, conn, live, shadow)
	if err != nil {
		return err
	}
	v, d := quoteIdent(version), quoteIdent(deleted)
	// Rows superseded by a sorting-key move first: should the shadow's
	// sorting key put one with its new row (same version), the later
	// insert, the new row, wins.
	for _, where := range []string{
		fmt.Sprintf("%s > %d AND %s = %d", v, lsn, d, DeletedMoved),
		fmt.Sprintf("%s > %d AND %s != %d OR %s = %d", v, lsn, d, DeletedMoved, d, DeletedRow),
	} {
		carry := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s", qualified(shadow), list, list, qualified(live), where)
		if err := conn.Exec(ctx, carry); err != nil {
			return fmt.Errorf("carry the rows of %s newer than the copy: %w", live, err)
		}
	}
	return nil
}

// CarryDeletedRows copies into shadow the rows of live marked deleted
// (column deleted = 1), for the columns both tables have, so that a full
// resync keeps the deletions live recorded. Repeatable.
func CarryDeletedRows(ctx context.Context, conn driver.Conn, live, shadow connectors.TableName, deleted string) error {
	list, err := commonColumns(ctx, conn, live, shadow)
	if err != nil {
		return err
	}
	carry := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s = 1",
		qualified(shadow), list, list, qualified(live), quoteIdent(deleted))
	if err := conn.Exec(ctx, carry); err != nil {
		return fmt.Errorf("carry deleted rows of %s: %w", live, err)
	}
	return nil
}

// commonColumns lists, quoted and comma-separated, the columns a and b
// both have, in b's order; none is an error.
func commonColumns(ctx context.Context, conn driver.Conn, a, b connectors.TableName) (string, error) {
	rows, err := conn.Query(ctx, `SELECT name FROM system.columns WHERE database = ? AND table = ?
		AND name IN (SELECT name FROM system.columns WHERE database = ? AND table = ?)`,
		b.Schema, b.Name, a.Schema, a.Name)
	if err != nil {
		return "", fmt.Errorf("columns of %s: %w", b, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return "", err
		}
		out = append(out, quoteIdent(n))
	}
	if len(out) == 0 {
		return "", fmt.Errorf("%s and %s have no column in common", a, b)
	}
	return strings.Join(out, ", "), rows.Err()
}

// SwapTables puts each live table's shadow (recorded for mirror in db as
// Sluice's own, role shadow) in its place and drops the old tables. Where
// the server has EXCHANGE TABLES (an Atomic database on 21.3 or newer)
// each pair is exchanged atomically; otherwise (18.16) one multi-table
// RENAME moves them all. Before a live table is renamed away it is marked
// and recorded as Sluice's old table (role old, under a free name never
// in reserved), so that a crash at any point leaves only recorded tables,
// which the next run drops (old) or swaps in (shadow). A shadow that is
// not recorded, or no longer marked, was swapped before a restart (or is
// not Sluice's): nothing is done for that table. A live table that is
// missing is simply replaced. Run it again after a crash: idempotent.
func SwapTables(ctx context.Context, conn driver.Conn, info ServerInfo, db, mirror string, lives, reserved []connectors.TableName) error {
	return swapTables(ctx, conn, info, db, mirror, lives, reserved, nil)
}

// swapTables is SwapTables that runs check (when not nil) before it
// changes anything and again just before each statement that puts a
// shadow in (EXCHANGE, RENAME), and stops with check's error: a claimed
// Destination's lease epoch (fence.go).
func swapTables(ctx context.Context, conn driver.Conn, info ServerInfo, db, mirror string, lives, reserved []connectors.TableName,
	check func(ctx context.Context) error) error {
	if check == nil {
		check = func(context.Context) error { return nil }
	}
	if err := check(ctx); err != nil {
		return err
	}
	for _, live := range lives {
		// An old table a crash left behind, if it is still Sluice's.
		if err := DropOwned(ctx, conn, db, mirror, live, RoleOld); err != nil {
			return err
		}
	}
	shadows, err := OwnedTables(ctx, conn, db, mirror, RoleShadow)
	if err != nil {
		return err
	}
	exchange := false
	if len(lives) > 0 && info.AtLeast(21, 3) {
		var engine string
		if err := conn.QueryRow(ctx, "SELECT engine FROM system.databases WHERE name = ?", lives[0].Schema).Scan(&engine); err != nil {
			return fmt.Errorf("database engine of %s: %w", lives[0].Schema, err)
		}
		exchange = engine == "Atomic"
	}
	var renames []string
	var swapped, replaced, picked []connectors.TableName
	for _, live := range lives {
		sh, has := shadows[live]
		if !has {
			continue
		}
		swapped = append(swapped, live)
		exists, err := TableExists(ctx, conn, live)
		if err != nil {
			return err
		}
		if !exists {
			renames = append(renames, qualified(sh.Name)+" TO "+qualified(live))
			continue
		}
		oldName := sh.Name // EXCHANGE leaves the old table under the shadow's name
		if !exchange {
			if oldName, err = FreeName(ctx, conn, live, RoleOld, slices.Concat(reserved, picked)); err != nil {
				return err
			}
			picked = append(picked, oldName)
		}
		old, err := NewOwned(live, oldName, RoleOld)
		if err != nil {
			return err
		}
		if err := MarkTable(ctx, conn, old, live, DefaultVersionColumn); err != nil {
			return err
		}
		if err := Record(ctx, conn, db, mirror, old); err != nil {
			return err
		}
		replaced = append(replaced, live)
		if exchange {
			if err := check(ctx); err != nil {
				return err
			}
			if err := conn.Exec(ctx, "EXCHANGE TABLES "+qualified(live)+" AND "+qualified(sh.Name)); err != nil {
				return fmt.Errorf("exchange %s and %s: %w", live, sh.Name, err)
			}
			continue
		}
		renames = append(renames, qualified(live)+" TO "+qualified(oldName), qualified(sh.Name)+" TO "+qualified(live))
	}
	if len(renames) > 0 {
		if err := check(ctx); err != nil {
			return err
		}
		if err := conn.Exec(ctx, "RENAME TABLE "+strings.Join(renames, ", ")); err != nil {
			return fmt.Errorf("swap resynced tables in: %w", err)
		}
	}
	for _, live := range swapped {
		if err := Forget(ctx, conn, db, mirror, live, RoleShadow); err != nil {
			return err
		}
	}
	for _, live := range replaced {
		if err := DropOwned(ctx, conn, db, mirror, live, RoleOld); err != nil {
			return fmt.Errorf("drop the replaced table: %w", err)
		}
	}
	return nil
}
