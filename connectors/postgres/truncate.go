package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Resyncing one destination table with the truncate strategy (empty and
// restore), all on the destination database:
//
//  1. SaveObjects lists what emptying the table removes: its indexes and
//     the foreign keys that involve it. The caller stores the list (it
//     marshals to JSON) so that a crash does not lose it;
//  2. EmptyTable, in the caller's transaction, drops them and empties the
//     table, which the caller then loads;
//  3. RestoreSaved rebuilds them after the load.

// SavedObjects is what EmptyTable removes from a table besides its rows,
// for RestoreSaved to put back. It marshals to JSON; the field names are
// stored by callers and must not change.
type SavedObjects struct {
	Indexes     []IndexDef      `json:"indexes"`
	ForeignKeys []ForeignKeyDef `json:"foreign_keys"`
}

// SaveObjects returns the indexes of live (TableIndexes) and the foreign
// keys that involve it (TableForeignKeys). A table that is missing or not
// an ordinary table is an error wrapping ErrTableNotFound. It only reads.
func SaveObjects(ctx context.Context, q Querier, live connectors.TableName) (SavedObjects, error) {
	var saved SavedObjects
	var err error
	if saved.Indexes, err = TableIndexes(ctx, q, live); err != nil {
		return SavedObjects{}, err
	}
	if saved.ForeignKeys, err = TableForeignKeys(ctx, q, live); err != nil {
		return SavedObjects{}, err
	}
	return saved, nil
}

// TableForeignKeys lists the foreign keys that involve table: those that
// reference it (ReferencingForeignKeys: other tables' and table's own
// self-references), then table's own that reference another table, by
// name. It only reads.
func TableForeignKeys(ctx context.Context, q Querier, table connectors.TableName) ([]ForeignKeyDef, error) {
	fks, err := ReferencingForeignKeys(ctx, q, table)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `
SELECT con.conname::text, pg_get_constraintdef(con.oid)
FROM pg_constraint con WHERE con.conrelid = $1::regclass AND con.contype = 'f' AND con.confrelid <> con.conrelid
ORDER BY con.conname`, table.Quoted())
	if err != nil {
		return nil, fmt.Errorf("list foreign keys of %s: %w", table, err)
	}
	own, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ForeignKeyDef, error) {
		d := ForeignKeyDef{Table: table}
		return d, r.Scan(&d.Name, &d.Definition)
	})
	if err != nil {
		return nil, fmt.Errorf("list foreign keys of %s: %w", table, err)
	}
	return append(fks, own...), nil
}

// EmptyTable drops the foreign keys and indexes saved lists (SaveObjects)
// and truncates live, in db: run it in a transaction, with the statement
// that stores saved, so that a crash leaves either everything or nothing
// done. Objects already gone are skipped (DROP ... IF EXISTS), so it can be
// re-run with the list an earlier attempt stored. Not reversible: the rows
// are gone; RestoreSaved puts the objects back.
func EmptyTable(ctx context.Context, db Execer, live connectors.TableName, saved SavedObjects) error {
	for _, fk := range saved.ForeignKeys {
		if _, err := db.Exec(ctx, fk.DropDDL()); err != nil {
			return fmt.Errorf("drop foreign key %s: %w", fk.Name, err)
		}
	}
	for _, ix := range saved.Indexes {
		drop := "DROP INDEX IF EXISTS " + pgx.Identifier{live.Schema, ix.Name}.Sanitize()
		if ix.Constraint {
			drop = "ALTER TABLE " + live.Quoted() + " DROP CONSTRAINT IF EXISTS " + pgx.Identifier{ix.Name}.Sanitize()
		}
		if _, err := db.Exec(ctx, drop); err != nil {
			return fmt.Errorf("drop index %s: %w", ix.Name, err)
		}
	}
	if _, err := db.Exec(ctx, "TRUNCATE "+live.Quoted()); err != nil {
		return fmt.Errorf("truncate %s: %w", live, err)
	}
	return nil
}

// RestoreSaved rebuilds on live what EmptyTable dropped: the indexes
// (RestoreIndex), then the foreign keys, re-added NOT VALID (no scan of
// the tables; ForeignKeyDef.AddDDL). Each statement runs on its own and
// skips what is there already, so a run killed half-way can be re-run:
// idempotent. Destination.Restore runs the same steps (restoreSaved),
// each under the lease epoch, with the primary key between.
func RestoreSaved(ctx context.Context, db interface {
	Querier
	Execer
}, live connectors.TableName, saved SavedObjects) error {
	return restoreSaved(ctx, live, saved, nil,
		func(build func(queryExecer) error) error { return build(db) },
		func(write func(Execer) error) error { return write(db) })
}

// restoreSaved is RestoreSaved's steps: each index, then key (nil: none)
// through build, then each foreign key through write; build and write run
// a step (on a connection, or fenced in a transaction of its own).
func restoreSaved(ctx context.Context, live connectors.TableName, saved SavedObjects, key func(queryExecer) error,
	build func(func(queryExecer) error) error, write func(func(Execer) error) error) error {
	for _, ix := range saved.Indexes {
		if err := build(func(db queryExecer) error { return RestoreIndex(ctx, db, live, ix) }); err != nil {
			return err
		}
	}
	if key != nil {
		if err := build(key); err != nil {
			return err
		}
	}
	for _, fk := range saved.ForeignKeys {
		err := write(func(db Execer) error {
			if _, err := db.Exec(ctx, fk.AddDDL(true)); err != nil {
				return fmt.Errorf("restore foreign key %s on %s: %w", fk.Name, fk.Table, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
