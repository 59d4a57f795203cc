package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Retired tables: the live table a swap replaced is not dropped in the
// swap's transaction but set aside, and dropped right after the resync is
// done (Destination.DropRetired). Dropping a large table costs its
// commit the removal of its files: 100-340 ms for pgbench_accounts at
// scale 30 (450 MB with its key), a tenth of the whole resync, while the
// swap's statements take 20-30 ms.
//
// In the swap's transaction (retireTable) the old table, already renamed
// away, moves into the metadata schema as sluice_retired_<oid>: its
// indexes and identity sequences move with it (renamed first, so that no
// two retired tables' names meet there) and its extended statistics are
// dropped (they do not move, and the new table gets its own); it is
// recorded in retired_tables by OID. Nothing of it is left under the
// user's names. DropRetired drops a recorded table only while the table at
// the recorded name has the recorded OID, and forgets the record; a
// record whose table is gone is forgotten. A crash before the drop leaves
// the record: the mirror's next CDC start and DROP MIRROR drop it.

// metaRetiredDDL creates the record of retired tables.
const metaRetiredDDL = `CREATE TABLE IF NOT EXISTS %s.retired_tables (
	mirror text,
	name text,
	table_oid oid NOT NULL,
	retired_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (mirror, name))`

// retiredPrefix is the name of a retired table of OID oid, and the prefix
// of its indexes' and sequences' names.
func retiredPrefix(oid uint32) string { return "sluice_retired_" + strconv.FormatUint(uint64(oid), 10) }

// swapOwnedRetiring is SwapOwned, the old table set aside for mirror in
// meta (retireTable) rather than dropped.
func swapOwnedRetiring(ctx context.Context, tx pgx.Tx, shadow OwnedTable, meta, mirror string) (SwapReport, error) {
	return swapTable(ctx, tx, shadow.Live, shadow.Name, shadow.OID, func(old connectors.TableName) error {
		return retireTable(ctx, tx, meta, mirror, old)
	})
}

// retireTable sets old aside in tx (see the file's comment) for mirror.
func retireTable(ctx context.Context, tx pgx.Tx, meta, mirror string, old connectors.TableName) error {
	oid, err := tableOID(ctx, tx, old)
	if err != nil {
		return fmt.Errorf("set %s aside: %w", old, err)
	}
	prefix := retiredPrefix(oid)
	names := func(sql string) ([]string, error) {
		rows, err := tx.Query(ctx, sql, oid)
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[string])
	}
	var stmts []string
	indexes, err := names(`SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1 ORDER BY c.oid`)
	if err != nil {
		return fmt.Errorf("set %s aside: read its indexes: %w", old, err)
	}
	for i, x := range indexes {
		stmts = append(stmts, "ALTER INDEX "+pgx.Identifier{old.Schema, x}.Sanitize()+" RENAME TO "+
			quoteIdent(prefix+"_i"+strconv.Itoa(i)))
	}
	// Its sequences (identity, and serial ones not handed to the new
	// table), wherever they are: they move or go with it.
	seqs, err := names(`SELECT format('%I.%I', n.nspname, c.relname) FROM pg_depend d
JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = $1
  AND d.deptype IN ('a', 'i') AND c.relkind = 'S' ORDER BY c.oid`)
	if err != nil {
		return fmt.Errorf("set %s aside: read its sequences: %w", old, err)
	}
	for i, s := range seqs {
		stmts = append(stmts, "ALTER SEQUENCE "+s+" RENAME TO "+quoteIdent(prefix+"_s"+strconv.Itoa(i)))
	}
	stats, err := names(`SELECT format('%I.%I', n.nspname, s.stxname) FROM pg_statistic_ext s
JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE s.stxrelid = $1`)
	if err != nil {
		return fmt.Errorf("set %s aside: read its statistics: %w", old, err)
	}
	for _, s := range stats {
		stmts = append(stmts, "DROP STATISTICS "+s)
	}
	stmts = append(stmts, "ALTER TABLE "+old.Quoted()+" RENAME TO "+quoteIdent(prefix))
	if old.Schema != metaName(meta) {
		// (A metadata schema that is the table's own keeps it there.)
		stmts = append(stmts, "ALTER TABLE "+pgx.Identifier{old.Schema, prefix}.Sanitize()+" SET SCHEMA "+metaSchema(meta))
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("set %s aside: %s: %w", old, s, err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+metaSchema(meta)+".retired_tables (mirror, name, table_oid) VALUES ($1, $2, $3)",
		mirror, prefix, oid); err != nil {
		return fmt.Errorf("record %s set aside: %w", old, err)
	}
	return nil
}

// metaName is the metadata schema's name (meta, or the default).
func metaName(meta string) string {
	if meta == "" {
		return DefaultMetadataSchema
	}
	return meta
}

// retiredLockTimeout bounds how long dropping a retired table waits for its
// lock (a reader of it, which only Sluice's metadata schema holds).
const retiredLockTimeout = 5 * time.Second

// retiredRecord is a row of retired_tables.
type retiredRecord struct {
	name string
	oid  uint32
}

// retiredRecords reads mirror's retired tables.
func retiredRecords(ctx context.Context, q Querier, meta, mirror string) ([]retiredRecord, error) {
	rows, err := q.Query(ctx, "SELECT name, table_oid FROM "+metaSchema(meta)+".retired_tables WHERE mirror = $1", mirror)
	if err != nil {
		return nil, fmt.Errorf("read retired tables of mirror %s: %w", mirror, err)
	}
	var out []retiredRecord
	var r retiredRecord
	if _, err := pgx.ForEachRow(rows, []any{&r.name, &r.oid}, func() error { out = append(out, r); return nil }); err != nil {
		return nil, fmt.Errorf("read retired tables of mirror %s: %w", mirror, err)
	}
	return out, nil
}

// DropRetired implements connectors.RetiredDropper: it drops the tables
// swaps set aside for the mirror (see the file's comment), each in a
// transaction of its own. Idempotent.
func (d *Destination) DropRetired(ctx context.Context) error {
	if err := d.ensureMeta(ctx); err != nil {
		return err
	}
	recs, err := retiredRecords(ctx, d.conn, d.meta, d.mirror)
	if err != nil {
		return err
	}
	for _, r := range recs {
		err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
			if err := SetLockTimeout(ctx, tx, retiredLockTimeout); err != nil {
				return err
			}
			return dropRetired(ctx, tx, d.meta, d.mirror, r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// dropRetiredAll drops every table set aside for mirror, in db's
// transaction (Teardown).
func dropRetiredAll(ctx context.Context, db interface {
	Querier
	Execer
}, meta, mirror string) error {
	recs, err := retiredRecords(ctx, db, meta, mirror)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := dropRetired(ctx, db, meta, mirror, r); err != nil {
			return err
		}
	}
	return nil
}

// dropRetired drops r's table of meta if it is still the one recorded
// (OID), and forgets the record.
func dropRetired(ctx context.Context, db interface {
	Querier
	Execer
}, meta, mirror string, r retiredRecord) error {
	name, oid := r.name, r.oid
	t := connectors.TableName{Schema: metaName(meta), Name: name}
	have, err := tableOID(ctx, db, t)
	switch {
	case errors.Is(err, ErrTableNotFound):
	case err != nil:
		return fmt.Errorf("drop retired table %s: %w", t, err)
	case have == oid:
		if _, err := db.Exec(ctx, "DROP TABLE "+t.Quoted()); err != nil {
			return fmt.Errorf("drop retired table %s: %w", t, err)
		}
	}
	if _, err := db.Exec(ctx, "DELETE FROM "+metaSchema(meta)+".retired_tables WHERE mirror = $1 AND name = $2", mirror, name); err != nil {
		return fmt.Errorf("forget retired table %s: %w", t, err)
	}
	return nil
}
