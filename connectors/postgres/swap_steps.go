package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Steps of the resync flows around SwapOwned, in the swap's transaction
// (SetLockTimeout, CarrySoftDeleted, RenameOwned) or after it
// (ValidateForeignKeys).

// SetLockTimeout bounds, for the rest of transaction tx, how long a
// statement waits for a lock (SET LOCAL lock_timeout): while a swap or a
// drop waits, readers queue behind it, so it had better fail and be
// retried. d is rounded down to milliseconds.
func SetLockTimeout(ctx context.Context, tx Execer, d time.Duration) error {
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", d.Milliseconds())); err != nil {
		return fmt.Errorf("set lock timeout: %w", err)
	}
	return nil
}

// CarrySoftDeleted copies into shadow the rows of live whose softCol is
// true that shadow lacks (matched on the primary key columns primaryKey),
// for the columns both tables have (generated ones left out), so that a
// swap keeps rows marked deleted that the copy did not see. Run it in the
// swap's transaction. Repeatable: a row carried before is not copied
// again.
func CarrySoftDeleted(ctx context.Context, tx pgx.Tx, live, shadow connectors.TableName, primaryKey []string, softCol string) error {
	rows, err := tx.Query(ctx, `
SELECT quote_ident(a.attname) FROM pg_attribute a
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  AND EXISTS (SELECT FROM pg_attribute b WHERE b.attrelid = $2::regclass AND b.attname = a.attname
              AND b.attnum > 0 AND NOT b.attisdropped AND b.attgenerated = '')
ORDER BY a.attnum`, live.Quoted(), shadow.Quoted())
	if err != nil {
		return fmt.Errorf("carry soft-deleted rows of %s: %w", live, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("carry soft-deleted rows of %s: %w", live, err)
	}
	if len(cols) == 0 {
		return nil
	}
	var match []string
	for _, k := range primaryKey {
		q := pgx.Identifier{k}.Sanitize()
		match = append(match, "s."+q+" = l."+q)
	}
	list := strings.Join(cols, ", ")
	sql := fmt.Sprintf(`INSERT INTO %s (%s) SELECT %s FROM %s l WHERE l.%s AND NOT EXISTS (SELECT FROM %s s WHERE %s)`,
		shadow.Quoted(), list, "l."+strings.Join(cols, ", l."), live.Quoted(), pgx.Identifier{softCol}.Sanitize(),
		shadow.Quoted(), strings.Join(match, " AND "))
	if _, err := tx.Exec(ctx, sql); err != nil {
		return fmt.Errorf("carry soft-deleted rows of %s: %w", live, err)
	}
	return nil
}

// RenameOwned puts the temporary table o at its live table's name, where
// no table is (a live table that is gone is simply replaced), in tx: it
// locks o, checks that it is still the table recorded (CheckOwned: else
// an error wrapping ErrNoShadow) and renames it. The caller forgets the
// record (ForgetOwned) in the same transaction. Not idempotent: after the
// commit o.Name is gone.
func RenameOwned(ctx context.Context, tx pgx.Tx, o OwnedTable) error {
	live, shadow := o.Live, o.Name
	if _, err := tx.Exec(ctx, "LOCK TABLE "+shadow.Quoted()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return fmt.Errorf("lock %s: %w", shadow, err)
	}
	if err := CheckOwned(ctx, tx, o); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "ALTER TABLE "+shadow.Quoted()+" RENAME TO "+pgx.Identifier{live.Name}.Sanitize()); err != nil {
		return fmt.Errorf("rename %s to %s: %w", shadow, live, err)
	}
	return nil
}

// ValidateForeignKeys runs, one by one on db, the statements a swap left
// to validate the foreign keys it re-added NOT VALID (SwapReport.Validate),
// outside the swap's transaction: they take no lock that stops readers or
// writers. A statement that fails is passed to failed with its error, and
// the run goes on unless failed returns an error; a cancelled ctx ends the
// run with ctx's error. Idempotent.
func ValidateForeignKeys(ctx context.Context, db Execer, stmts []string, failed func(stmt string, err error) error) error {
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := failed(s, err); err != nil {
				return err
			}
		}
	}
	return nil
}
