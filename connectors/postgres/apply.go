package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// DestTable is one mirrored table as the applier sees it.
type DestTable struct {
	// Source is the source table: the key of Change.Table.
	Source connectors.TableName
	// Dest is the destination table. It must exist with every column of
	// Schema (same names) and a primary key or unique index on
	// Schema.PrimaryKey.
	Dest connectors.TableName
	// Schema lists the replicated columns (Change values come in its column
	// order) and the primary key, which must not be empty. The applier
	// reads it at every batch: when the stream appends columns to it, the
	// staging table is rebuilt (the destination must have them by then).
	Schema *connectors.TableSchema
	// SoftDeleteColumn, if set, names a boolean destination column: a
	// delete sets it true and keeps the row and its values, an insert or
	// update sets it false, and a truncate sets it true on every row.
	SoftDeleteColumn string
	// SyncedAtColumn, if set, names a timestamptz destination column set to
	// now() (the destination transaction's time) by every applied insert,
	// update and soft delete.
	SyncedAtColumn string
}

// TableCounts counts the row changes of a batch for one source table, by
// kind as received (before any folding).
type TableCounts struct{ Inserts, Updates, Deletes int64 }

// Applier applies CDC batches to a Postgres destination. Each batch is one
// destination transaction that also records the batch's end position
// (SetLSN), so after a crash the destination holds a batch and its position,
// or neither.
//
// Replays are safe: a batch whose EndLSN is not beyond the recorded position
// is skipped whole, and re-applying changes whose effects are already present
// (a batch that straddles the recorded position, a resumed initial load) gives
// the same final state, because inserts and updates are upserts by primary
// key and deletes of missing rows do nothing. The one exception is a
// primary-key change whose new row has unchanged TOAST values: those values
// are read from the old row on the destination, so re-applying it after
// later changes reused the old key can copy the wrong values. Start the
// stream at LastLSN so the source never resends a transaction the
// destination holds.
//
// An Applier is not safe for concurrent use. It owns nothing but its staging
// tables, which are temporary tables of conn's session: after conn breaks,
// make a new Applier on a new connection. Destination tables must not have
// foreign keys among them (self-references included) unless the
// constraints are deferred, because changes are applied per table and per
// kind of statement, not row by row in source order.
type Applier struct {
	conn   *pgx.Conn
	meta   string
	mirror string
	tables map[connectors.TableName]*tableState
	// drop lists staging tables of replaced tables, dropped before the
	// next batch.
	drop []string
	// env is the state of the batch being applied.
	env flushEnv
}

// NewApplier checks the table set, makes sure the metadata tables exist in
// schema meta ("" for DefaultMetadataSchema; see EnsureMetadata) and returns
// an applier for mirror on conn. Staging tables are created lazily, by the
// first batch that touches each table.
func NewApplier(ctx context.Context, conn *pgx.Conn, meta, mirror string, tables []DestTable) (*Applier, error) {
	if mirror == "" {
		return nil, errors.New("new applier: mirror name is empty")
	}
	a := &Applier{conn: conn, meta: meta, mirror: mirror}
	a.SetTables(tables)
	for _, dt := range tables {
		if err := a.tables[dt.Source].err; err != nil {
			return nil, err
		}
	}
	if err := EnsureMetadata(ctx, conn, meta); err != nil {
		return nil, err
	}
	return a, nil
}

// SetTables replaces the table set (after a schema change or a resync).
// Staging tables of tables whose destination and columns did not change are
// kept; the others are dropped before the next batch and re-created when
// needed. An invalid table makes every batch that touches it fail.
func (a *Applier) SetTables(tables []DestTable) {
	old := a.tables
	a.tables = make(map[connectors.TableName]*tableState, len(tables))
	for _, dt := range tables {
		ts := &tableState{DestTable: dt, err: validateDestTable(dt)}
		if _, dup := a.tables[dt.Source]; dup && ts.err == nil {
			ts.err = fmt.Errorf("table %s is mirrored twice", dt.Source)
		}
		if o := old[dt.Source]; o != nil && ts.err == nil && o.stage != "" && o.Dest == dt.Dest &&
			o.SoftDeleteColumn == dt.SoftDeleteColumn && o.SyncedAtColumn == dt.SyncedAtColumn {
			ts.cols, ts.types, ts.stage, ts.elemOID, ts.direct = o.cols, o.types, o.stage, o.elemOID, o.direct
			ts.syncedType = o.syncedType
			ts.initKeys()
			delete(old, dt.Source)
		}
		a.tables[dt.Source] = ts
	}
	for _, o := range old {
		if o.stage != "" {
			a.drop = append(a.drop, o.stage)
		}
	}
}

func validateDestTable(dt DestTable) error {
	switch {
	case dt.Schema == nil:
		return fmt.Errorf("table %s: no schema", dt.Source)
	case dt.Dest.Schema == "" || dt.Dest.Name == "":
		return fmt.Errorf("table %s: no destination table", dt.Source)
	case len(dt.Schema.PrimaryKey) == 0:
		return fmt.Errorf("table %s: no primary key to apply changes by", dt.Source)
	}
	for _, k := range dt.Schema.PrimaryKey {
		if dt.Schema.ColumnIndex(k) < 0 {
			return fmt.Errorf("table %s: primary key column %q is not replicated", dt.Source, k)
		}
	}
	for _, c := range []string{dt.SoftDeleteColumn, dt.SyncedAtColumn, stageGroupColumn} {
		if c != "" && dt.Schema.ColumnIndex(c) >= 0 {
			return fmt.Errorf("table %s: column %q is replicated and cannot be a soft delete, synced-at or staging column", dt.Source, c)
		}
	}
	if dt.SoftDeleteColumn != "" && dt.SoftDeleteColumn == dt.SyncedAtColumn {
		return fmt.Errorf("table %s: soft delete and synced-at columns are both %q", dt.Source, dt.SoftDeleteColumn)
	}
	return nil
}

// initKeys derives the key positions and a fresh reducer from ts.cols.
func (ts *tableState) initKeys() {
	ts.pk = slices.Clone(ts.Schema.PrimaryKey)
	ts.keyIdx = ts.Schema.KeyIndexes()
	ts.isKey = make([]bool, len(ts.cols))
	for _, i := range ts.keyIdx {
		ts.isKey[i] = true
	}
	ts.red = newReducer(ts.keyIdx, ts.SoftDeleteColumn != "")
}

// Apply applies b in one destination transaction that also records
// b.EndLSN (which must be set) as the mirror's position. It returns the
// change counts per source table. A batch whose EndLSN is not beyond the
// recorded position was applied before: it is skipped and the counts are
// empty. On error nothing of the batch is applied and the position is
// unchanged (but when the error is a failed COMMIT, the server may have
// committed: applying the batch again is then safe either way). Errors
// name the change and table at fault, not the batch, which the caller
// knows. Truncate empties the destination table (soft delete: marks every
// row deleted) at its place in the batch.
func (a *Applier) Apply(ctx context.Context, b *connectors.Batch) (map[connectors.TableName]TableCounts, error) {
	if b == nil || b.EndLSN == 0 {
		return nil, errors.New("batch has no end lsn")
	}
	var used []*tableState
	for i := range b.Changes {
		c := &b.Changes[i]
		ts := a.tables[c.Table]
		if ts == nil {
			return nil, fmt.Errorf("change of %s, which is not in the mirror", c.Table)
		}
		if ts.err != nil {
			return nil, ts.err
		}
		if !slices.Contains(used, ts) {
			used = append(used, ts)
		}
	}
	if err := a.prepare(ctx, used); err != nil {
		return nil, err
	}
	counts, err := a.apply(ctx, b, used, false)
	if fe := (*freshError)(nil); errors.As(err, &fe) {
		// A row the fast path took for new was there (a replay): do it
		// again, tolerating existing rows everywhere.
		counts, err = a.apply(ctx, b, used, true)
	}
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// apply runs b in one transaction; safe disables the fast paths that
// assume fresh keys are absent (see apply_flush.go).
func (a *Applier) apply(ctx context.Context, b *connectors.Batch, used []*tableState, safe bool) (counts map[connectors.TableName]TableCounts, err error) {
	for _, ts := range used {
		ts.red.reset()
		ts.nextGroup = 0
	}
	a.env = flushEnv{conn: a.conn, safe: safe}
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			for _, ts := range used {
				ts.red.reset()
			}
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = tx.Rollback(rctx) // the error that brought us here is the one to report
		}
	}()
	// The recorded position, locked: a second applier of the mirror (which
	// should not exist) waits here, then finds the batch applied.
	var cur int64
	switch qerr := tx.QueryRow(ctx, "SELECT lsn FROM "+metaSchema(a.meta)+".mirror_state WHERE mirror = $1 FOR UPDATE",
		a.mirror).Scan(&cur); {
	case qerr == nil && uint64(cur) >= b.EndLSN:
		return map[connectors.TableName]TableCounts{}, tx.Rollback(ctx)
	case qerr != nil && !errors.Is(qerr, pgx.ErrNoRows):
		return nil, fmt.Errorf("read recorded lsn: %w", qerr)
	}
	counts = make(map[connectors.TableName]TableCounts, len(used))
	for i := range b.Changes {
		c := &b.Changes[i]
		ts := a.tables[c.Table]
		if err = a.applyChange(ctx, ts, c); err != nil {
			return nil, fmt.Errorf("change %d (%c of %s): %w", i, c.Kind, c.Table, err)
		}
		n := counts[c.Table]
		switch c.Kind {
		case connectors.Insert:
			n.Inserts++
		case connectors.Update:
			n.Updates++
		case connectors.Delete:
			n.Deletes++
		}
		counts[c.Table] = n
	}
	for _, ts := range used {
		if err = ts.flush(ctx, &a.env); err != nil {
			return nil, err
		}
	}
	if err = SetLSN(ctx, tx, a.meta, a.mirror, b.EndLSN); err != nil {
		return nil, err
	}
	if err = tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return counts, nil
}

// prepare drops replaced staging tables and (re)creates the staging tables
// of used whose schema changed. It runs outside the batch transaction so a
// failed batch cannot undo a creation.
func (a *Applier) prepare(ctx context.Context, used []*tableState) error {
	for len(a.drop) > 0 {
		if _, err := a.conn.Exec(ctx, "DROP TABLE IF EXISTS "+a.drop[0]); err != nil {
			return fmt.Errorf("drop staging table %s: %w", a.drop[0], err)
		}
		a.drop = a.drop[1:]
	}
	for _, ts := range used {
		if !ts.stale() {
			continue
		}
		if err := validateDestTable(ts.DestTable); err != nil {
			return err
		}
		old := ts.stage
		if err := ts.createStage(ctx, a.conn); err != nil {
			return err
		}
		if old != "" {
			a.drop = append(a.drop, old)
		}
	}
	return nil
}

// applyChange folds one change into its table's window, flushing first when
// the fold needs a barrier.
func (a *Applier) applyChange(ctx context.Context, ts *tableState, c *connectors.Change) error {
	switch c.Kind {
	case connectors.Insert:
		v, err := ts.row(c.New, "new row")
		if err != nil {
			return err
		}
		return a.upsert(ctx, ts, v, true)
	case connectors.Update:
		v, err := ts.row(c.New, "new row")
		if err != nil {
			return err
		}
		if c.Old != nil {
			old, err := ts.row(c.Old, "old key")
			if err != nil {
				return err
			}
			oldKey := bytes.Clone(ts.red.key(old))
			if !bytes.Equal(oldKey, ts.red.key(v)) {
				return a.moveRow(ctx, ts, oldKey, old, v)
			}
		}
		if hasUnchanged(v) {
			ts.red.update(ts.red.key(v), v)
			return nil
		}
		return a.upsert(ctx, ts, v, false)
	case connectors.Delete:
		old, err := ts.row(c.Old, "old key")
		if err != nil {
			return err
		}
		ts.red.remove(ts.red.key(old), old)
		return nil
	case connectors.Truncate:
		return a.truncate(ctx, ts)
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// row checks a change's values against the table: at most one per column,
// key columns set. A row shorter than the schema (decoded before the source
// added columns) lacks the trailing columns: they are Unchanged, which is
// how the stream marks columns a tuple does not carry.
func (ts *tableState) row(vals []connectors.Value, what string) ([]connectors.Value, error) {
	if len(vals) > len(ts.cols) {
		return nil, fmt.Errorf("%s has %d values, table has %d columns", what, len(vals), len(ts.cols))
	}
	if len(vals) < len(ts.cols) {
		padded := make([]connectors.Value, len(ts.cols))
		copy(padded, vals)
		for i := len(vals); i < len(padded); i++ {
			padded[i].Kind = connectors.Unchanged
		}
		vals = padded
	}
	for _, i := range ts.keyIdx {
		if vals[i].Kind != connectors.Binary {
			return nil, fmt.Errorf("%s: primary key column %q is %s", what, ts.cols[i].Name, kindName(vals[i].Kind))
		}
	}
	return vals, nil
}

func kindName(k connectors.ValueKind) string {
	switch k {
	case connectors.Null:
		return "null"
	case connectors.Unchanged:
		return "an unchanged (unsent) value"
	}
	return fmt.Sprintf("of unknown kind %q", k)
}

// upsert folds an upsert of v, behind a barrier when the fold needs one.
func (a *Applier) upsert(ctx context.Context, ts *tableState, v []connectors.Value, fresh bool) error {
	if ts.red.upsert(ts.red.key(v), v, fresh) {
		return nil
	}
	if err := ts.flush(ctx, &a.env); err != nil {
		return err
	}
	ts.red.upsert(ts.red.key(v), v, fresh) // an empty window needs no barrier
	return nil
}

// moveRow folds an update that moved a row from oldKey to v's key: a delete
// of the old key and an upsert of the new row. Columns the new row lacks
// (unchanged TOAST values) come from the old row as it stands at this point
// of the batch: from the window's pending entry for the old key when that
// knows them, else read from the destination (which, for that key, is the
// state at the start of the window). When the old row does not exist, the
// new row can only update what exists, like any update with unchanged
// columns.
func (a *Applier) moveRow(ctx context.Context, ts *tableState, oldKey []byte, old, v []connectors.Value) error {
	if !hasUnchanged(v) {
		ts.red.remove(oldKey, old)
		return a.upsert(ctx, ts, v, true)
	}
	src, ok, err := a.rowAt(ctx, ts, oldKey, old, v)
	if err != nil {
		return err
	}
	ts.red.remove(oldKey, old)
	if ok {
		ts.red.upsert(ts.red.key(v), merge(src, v), true) // complete: never a barrier
	} else {
		ts.red.update(ts.red.key(v), v)
	}
	return nil
}

// rowAt returns the row at key (values of old) at this point of the batch,
// with at least the columns v lacks filled in; ok is false when there is no
// such row.
func (a *Applier) rowAt(ctx context.Context, ts *tableState, key []byte, old, v []connectors.Value) ([]connectors.Value, bool, error) {
	p := ts.red.peek(key)
	if p != nil && p.op == opDelete && ts.SoftDeleteColumn == "" {
		return nil, false, nil
	}
	// pending reports whether the window's entry knows column i.
	pending := func(i int) bool { return p != nil && p.op != opDelete && p.vals[i].Kind != connectors.Unchanged }
	var need []int
	for i := range v {
		if v[i].Kind == connectors.Unchanged && !pending(i) {
			need = append(need, i)
		}
	}
	if p != nil && p.op == opUpsert && len(need) == 0 {
		return p.vals, true, nil // the pending upsert makes the row exist
	}
	row, found, err := ts.readRow(ctx, a.conn, old, need)
	switch {
	case err != nil:
		return nil, false, err
	case found:
		for i := range row {
			if pending(i) {
				row[i] = p.vals[i]
			}
		}
		return row, true, nil
	case p != nil && p.op == opUpsert:
		// The pending upsert inserts the row; what it does not know is NULL.
		return unchangedToNull(p.vals), true, nil
	}
	return nil, false, nil
}

// truncate applies a source TRUNCATE at its place in the batch. A hard
// truncate makes the window's pending entries irrelevant (the table ends
// empty whatever they did), so they are dropped; a soft one keeps their rows
// (flagged), so they are flushed first.
func (a *Applier) truncate(ctx context.Context, ts *tableState) error {
	if ts.SoftDeleteColumn == "" {
		ts.red.reset()
	} else if err := ts.flush(ctx, &a.env); err != nil {
		return err
	}
	if _, err := a.conn.Exec(ctx, ts.truncateSQL()); err != nil {
		return fmt.Errorf("truncate %s: %w", ts.Dest, err)
	}
	return nil
}
