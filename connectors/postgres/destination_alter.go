package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// Following the source's new columns (connectors.SchemaFollower) and
// emptying and restoring a table (connectors.Emptier) on the Postgres
// destination, over alter.go and truncate.go.

// sqlSource is a Postgres source, whose rows a back-fill copies straight
// from its SQL connection (BackfillColumns).
type sqlSource interface {
	// sqlConn is the source's SQL connection; the source keeps owning it.
	sqlConn() *pgx.Conn
}

// AddColumns implements connectors.SchemaFollower. In one transaction, it
// adds to t.Dest those of cols it lacks (AddMissingColumns: nullable) and
// fills them in for the rows it has, matched on t's primary key, with the
// source's current values: copied straight from a Postgres source
// (BackfillColumns), read with connectors.ColumnReader from another. The
// events are "<source> gained N column(s); added on <dest>" and, when rows
// were filled in, "back-filled N row(s) of <dest> with the source's values
// of <columns>". Columns t.Dest has already are left as they are, so a
// second call does nothing. A source that is neither is an error, before
// anything changes. It does not change t.Schema.
func (d *Destination) AddColumns(ctx context.Context, src connectors.Source, t connectors.DestTable, cols []connectors.Column) ([]string, error) {
	pg, fast := src.(sqlSource)
	reader, generic := src.(connectors.ColumnReader)
	if !fast && !generic {
		return nil, fmt.Errorf("add columns to %s: the source cannot read its rows' values of new columns to back-fill them", t.Dest)
	}
	var events []string
	err := pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		events = nil
		added, err := AddMissingColumns(ctx, tx, t.Dest, cols)
		if err != nil || len(added) == 0 {
			return tableFault(t.Source, err) // the table gone: the table's
		}
		events = append(events, fmt.Sprintf("%s gained %d column(s); added on %s", t.Source, len(added), t.Dest))
		names := make([]string, len(added))
		for i, c := range added {
			names[i] = c.Name
		}
		key := t.Schema.PrimaryKey
		if len(key) == 0 {
			return fmt.Errorf("backfill %s: no primary key to match its rows with the source's", t.Dest)
		}
		var n int64
		if fast {
			n, err = backfillIn(ctx, pg.sqlConn(), tx, t.Source, t.Dest, key, names)
		} else {
			n, err = backfillRead(ctx, reader, tx, t.Source, t.Dest, key, names)
		}
		if err != nil {
			return err
		}
		if n > 0 {
			events = append(events, fmt.Sprintf("back-filled %d row(s) of %s with the source's values of %s", n, t.Dest, strings.Join(names, ", ")))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return events, nil
}

// backfillRead is backfillIn from a ColumnReader: the source's rows, key
// and cols, are staged with binary COPY and the destination's rows updated
// from them.
func backfillRead(ctx context.Context, src connectors.ColumnReader, tx pgx.Tx, source, dest connectors.TableName, key, cols []string) (int64, error) {
	if _, err := tx.Exec(ctx, backfillStageDDL(dest, key, cols)); err != nil {
		return 0, fmt.Errorf("backfill %s: stage: %w", dest, err)
	}
	all := append(append([]string{}, key...), cols...)
	_, err := copyValues(ctx, tx, backfillStage, all, func(write func([][]connectors.Value) error) (int64, error) {
		return src.ReadColumns(ctx, source, key, cols, loadBatch, write)
	})
	if err != nil {
		return 0, fmt.Errorf("backfill %s: copy: %w", dest, err)
	}
	tag, err := tx.Exec(ctx, backfillUpdateSQL(dest, key, cols))
	if err != nil {
		return 0, fmt.Errorf("backfill %s: update: %w", dest, err)
	}
	return tag.RowsAffected(), nil
}

// Empty implements connectors.Emptier: what emptying live removes is listed
// (SaveObjects; or taken from st.Saved, an earlier attempt's record, as the
// table no longer has it) and, in one transaction, recorded with st
// (PutTableState) and removed with the rows (EmptyTable). It returns st
// with the record in Saved (SavedObjects as JSON). Once the Destination is
// claimed, that transaction first locks live (lockFirst), then checks the
// epoch (checkEpoch, the row held until the commit): a stale node empties
// nothing (TRUNCATE and DROP are transactional), and its error is a
// *connectors.FencedError.
func (d *Destination) Empty(ctx context.Context, live connectors.TableName, st connectors.TableState) (connectors.TableState, error) {
	if err := d.ensureMeta(ctx); err != nil {
		return st, err
	}
	saved, err := savedObjects(st)
	if err != nil {
		return st, err
	}
	if st.Saved == nil {
		if saved, err = SaveObjects(ctx, d.conn, live); err != nil {
			return st, err
		}
		raw, err := json.Marshal(saved)
		if err != nil {
			return st, err
		}
		st.Saved = raw
	}
	err = pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		// live first: TRUNCATE waits for its readers, and must not wait
		// holding the metadata row, which every batch of the mirror's
		// other tables needs (fence_more.go).
		if err := d.lockFirst(ctx, tx, live, "ACCESS EXCLUSIVE"); err != nil {
			return err
		}
		if err := d.checkEpoch(ctx, tx); err != nil {
			return err
		}
		if err := PutTableState(ctx, tx, d.meta, d.mirror, st); err != nil {
			return err
		}
		return EmptyTable(ctx, tx, live, saved)
	})
	return st, err
}

// Restore implements connectors.Emptier: the steps of RestoreSaved with
// st.Saved on t.Dest, and EnsurePrimaryKey, the indexes built with the
// memory of withBuildMemory: each index (RestoreIndex), then the key, then
// each foreign key re-added NOT VALID, the key before the foreign keys
// that may need it. Each is a step of its own, skipped when done, so a
// run cut off can be re-run: idempotent. Once the Destination is claimed,
// each index and the key commit only under its epoch (fencedBuild), and
// each foreign key checks it first (fencedWriteAfter: it locks t.Dest
// before the metadata row, the other table after): a stale node's step is
// a *connectors.FencedError and changes nothing.
func (d *Destination) Restore(ctx context.Context, t connectors.DestTable, st connectors.TableState) error {
	saved, err := savedObjects(st)
	if err != nil {
		return err
	}
	return d.withBuildMemory(ctx, func() error {
		return restoreSaved(ctx, t.Dest, saved,
			func(db queryExecer) error { return EnsurePrimaryKey(ctx, db, t.Dest, t.Schema) },
			func(build func(queryExecer) error) error { return d.fencedBuild(ctx, build) },
			func(write func(Execer) error) error {
				return d.fencedWriteAfter(ctx, t.Dest, "SHARE ROW EXCLUSIVE", write)
			})
	})
}

// savedObjects decodes st.Saved (empty when nil).
func savedObjects(st connectors.TableState) (SavedObjects, error) {
	var saved SavedObjects
	if st.Saved == nil {
		return saved, nil
	}
	if err := json.Unmarshal(st.Saved, &saved); err != nil {
		return saved, fmt.Errorf("decode saved objects of %s: %w", st.Table, err)
	}
	return saved, nil
}
