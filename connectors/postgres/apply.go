package postgres

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sluicedb/sluice/connectors"
)

// DestTable is connectors.DestTable (kept here for the applier's callers).
type DestTable = connectors.DestTable

// TableCounts is connectors.TableCounts.
type TableCounts = connectors.TableCounts

// The Postgres applier applies batches and keeps per-table resync positions.
var (
	_ connectors.Applier                = (*Applier)(nil)
	_ connectors.TablePositionCommitter = (*Applier)(nil)
)

// Applier applies CDC changes to a Postgres destination in transactions,
// each of which also records the position its changes end at (SetPosition), so
// after a crash the destination holds a transaction and its position, or
// neither. A transaction is Begin, any number of Add, then Commit (or
// Rollback); Apply does all three for one batch. Adding changes while the
// rest of a batch is still being received overlaps the two.
//
// Replays are safe: a transaction whose position is not beyond the
// recorded one is rolled back whole (Apply skips such a batch without
// applying anything), and re-applying changes whose effects are already
// present (a batch that straddles the recorded position, a resumed initial
// load) gives the same final state, because inserts and updates are upserts
// by primary key and deletes of missing rows do nothing. The one exception
// is a primary-key change whose new row has unchanged TOAST values: those
// values are read from the old row on the destination, so re-applying it
// after later changes reused the old key can copy the wrong values. Start
// the stream at LastPosition so the source never resends a transaction the
// destination holds.
//
// An Applier is not safe for concurrent use. It owns nothing but its staging
// tables, which are temporary tables of conn's session, and conn is its
// own while a transaction is open: after conn breaks, make a new Applier on
// a new connection. Destination tables must not have foreign keys among
// them (self-references included) unless the constraints are deferred,
// because changes are applied per table and per kind of statement, not row
// by row in source order.
type Applier struct {
	conn   *pgx.Conn
	meta   string
	mirror string
	tables map[connectors.TableName]*tableState
	// drop lists staging tables of replaced tables, dropped by the next
	// Begin.
	drop []string
	// last is the table of the last change looked up.
	last *tableState

	// The open transaction (tx is nil when there is none).
	tx       pgx.Tx
	env      flushEnv
	recorded connectors.Position   // the position recorded when it began
	added    [][]connectors.Change // copies, for a redo in safe mode (see Add)
	nAdded   int
	used     []*tableState // tables it touched
	created  []*tableState // tables whose staging table it created
	// retain, if set, replaces retainChanges (tests).
	retain int
	// epoch is the lease epoch the Destination was fenced with (0: not
	// fenced): every transaction checks, with the mirror's metadata row
	// locked, that it is still the recorded one (see begin).
	epoch int64
}

// NewApplier checks the table set, makes sure the metadata tables exist in
// schema meta ("" for DefaultMetadataSchema; see EnsureMetadata) and returns
// an applier for mirror on conn. Staging tables are created lazily, by the
// first transaction that touches each table.
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
// kept; the others are dropped by the next Begin and re-created when
// needed. An invalid table makes every batch that touches it fail. It must
// not be called while a transaction is open.
func (a *Applier) SetTables(tables []DestTable) {
	old := a.tables
	a.last = nil
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
// b.End (which must be set) as the mirror's position: Begin, Add and
// Commit in one. It returns the change counts per source table. A batch
// whose End is not beyond the recorded position was applied before: it
// is skipped and the counts are empty. On error nothing of the batch is
// applied and the position is unchanged (but when the error is a failed
// COMMIT, the server may have committed: applying the batch again is then
// safe either way). Errors name the change and table at fault, not the
// batch, which the caller knows. Truncate empties the destination table
// (soft delete: marks every row deleted) at its place in the batch.
func (a *Applier) Apply(ctx context.Context, b *connectors.Batch) (map[connectors.TableName]TableCounts, error) {
	if b == nil || b.End == "" {
		return nil, errors.New("batch has no end position")
	}
	recorded, err := a.Begin(ctx)
	if err != nil {
		return nil, err
	}
	if !recorded.Before(b.End) {
		return map[connectors.TableName]TableCounts{}, a.Rollback(ctx)
	}
	if err := a.Add(ctx, b.Changes); err != nil {
		return nil, err
	}
	return a.Commit(ctx, b.End)
}

// Begin opens a destination transaction, to which Add applies changes and
// which Commit ends by recording a position. It returns the position
// recorded for the mirror ("" if none), locked until the transaction ends:
// a second applier of the mirror (which should not exist) waits here, then
// finds what the first recorded. Only one transaction is open at a time.
// An applier of a fenced Destination (Fence) fails here with an error
// wrapping connectors.ErrFenced when a later epoch is recorded, and the
// lock it holds keeps that true until its Commit.
func (a *Applier) Begin(ctx context.Context) (connectors.Position, error) {
	if a.tx != nil {
		return "", errors.New("begin: a transaction is already open")
	}
	for len(a.drop) > 0 {
		if _, err := a.conn.Exec(ctx, "DROP TABLE IF EXISTS "+a.drop[0]); err != nil {
			return "", fmt.Errorf("drop staging table %s: %w", a.drop[0], err)
		}
		a.drop = a.drop[1:]
	}
	if err := a.begin(ctx, false); err != nil {
		return "", err
	}
	return a.recorded, nil
}

// begin opens the transaction; safe disables the fast paths that assume
// fresh keys are absent (see apply_flush.go).
func (a *Applier) begin(ctx context.Context, safe bool) error {
	tx, err := a.conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	var pos *string
	var lsn, epoch int64
	found := true
	switch qerr := tx.QueryRow(ctx, "SELECT position, lsn, epoch FROM "+metaSchema(a.meta)+".mirror_state WHERE mirror = $1 FOR UPDATE",
		a.mirror).Scan(&pos, &lsn, &epoch); {
	case qerr == nil:
		a.recorded = storedPosition(pos, lsn)
	case errors.Is(qerr, pgx.ErrNoRows):
		a.recorded, found = "", false
	default:
		a.tx = tx
		a.abort(ctx)
		return fmt.Errorf("read recorded position: %w", qerr)
	}
	a.tx = tx
	if a.epoch != 0 && (!found || epoch != a.epoch) {
		// The fence: the row stays locked until the transaction ends, so
		// no Fence of a later epoch can pass in between, and a stale
		// applier's transaction that holds it is ended by that Fence
		// (fence.go): either way the commit of a stale epoch applies
		// nothing.
		a.abort(ctx)
		if !found {
			return fmt.Errorf("mirror %s: the destination's record of the mirror was removed after lease epoch %d claimed it: %w",
				a.mirror, a.epoch, connectors.ErrFenced)
		}
		return &connectors.FencedError{Mirror: a.mirror, Epoch: a.epoch, Recorded: epoch}
	}
	a.env = flushEnv{conn: a.conn, safe: safe}
	return nil
}

// Add applies the changes of the slices, in order, after those added
// before, in the open transaction: when Add returns, the destination holds
// their effect (visible to the transaction only). Reduction per key
// (apply_reduce.go) works within one call, so fewer, larger calls do less
// work; a call may end anywhere, even inside a source transaction. The
// applier keeps nothing of the slices once Add returns. On error the
// transaction is rolled back, and nothing of it is applied.
//
// A fast path that meets a row it took for new (a replay) makes the
// applier do the transaction again in safe mode (see apply_flush.go). For
// that it keeps copies of the first retainChanges changes of a
// transaction (headers only: values are the caller's, which it does not
// reuse); beyond them it keeps none, and each flush that takes a fast path
// runs under a savepoint instead, to go back to and redo in safe mode
// (guardedFlush). Memory per transaction stays bounded that way, and small
// transactions pay for no savepoint.
func (a *Applier) Add(ctx context.Context, changes ...[]connectors.Change) error {
	if a.tx == nil {
		return errors.New("add changes: no open transaction")
	}
	err := a.add(ctx, changes, a.nAdded)
	if fe := (*freshError)(nil); errors.As(err, &fe) && !a.env.safe && !a.env.guarded {
		// A row the fast path took for new was there (a replay): do the
		// transaction again, tolerating existing rows everywhere.
		err = a.redo(ctx, changes)
	}
	if err != nil {
		a.abort(ctx)
		return err
	}
	n := 0
	for _, c := range changes {
		n += len(c)
	}
	switch {
	case a.env.safe || a.env.guarded:
		a.added = nil // no redo to come
	case a.nAdded+n > cmp.Or(a.retain, retainChanges):
		// Too many to keep: guard the fast paths from now on.
		a.env.guarded = true
		a.added = nil
	default:
		for _, c := range changes {
			a.added = append(a.added, slices.Clone(c))
		}
	}
	a.nAdded += n
	return nil
}

// retainChanges is how many changes of a transaction the applier keeps
// for a redo in safe mode (see Add).
const retainChanges = 1 << 16

// flush flushes ts's window; past retainChanges, a flush that takes a fast
// path does so under a savepoint, and one that finds a row there goes back
// to it and flushes again in safe mode, for the rest of the transaction.
func (a *Applier) flush(ctx context.Context, ts *tableState) error {
	if !a.env.guarded || a.env.safe || !ts.red.hasFresh() {
		return ts.flush(ctx, &a.env)
	}
	if _, err := a.conn.Exec(ctx, "SAVEPOINT sluice_flush"); err != nil {
		return fmt.Errorf("savepoint before applying to %s: %w", ts.Dest, err)
	}
	staged := ts.staged
	err := ts.flush(ctx, &a.env)
	if fe := (*freshError)(nil); errors.As(err, &fe) {
		if _, rerr := a.conn.Exec(ctx, "ROLLBACK TO SAVEPOINT sluice_flush"); rerr != nil {
			return fmt.Errorf("roll back to savepoint after %w: %w", err, rerr)
		}
		ts.staged = staged // the staging table is as it was
		a.env.safe = true
		err = ts.flush(ctx, &a.env)
	}
	if err != nil {
		return err
	}
	if _, err := a.conn.Exec(ctx, "RELEASE SAVEPOINT sluice_flush"); err != nil {
		return fmt.Errorf("release savepoint after applying to %s: %w", ts.Dest, err)
	}
	return nil
}

// redo rolls the transaction back and applies its changes and then more
// again, in safe mode.
func (a *Applier) redo(ctx context.Context, more [][]connectors.Change) error {
	a.rollback(ctx)
	if err := a.begin(ctx, true); err != nil {
		return err
	}
	if err := a.add(ctx, a.added, 0); err != nil {
		return err
	}
	return a.add(ctx, more, a.nAdded)
}

// add folds the changes of the slices (numbered from base in errors) and
// flushes every table.
func (a *Applier) add(ctx context.Context, chunks [][]connectors.Change, base int) error {
	n := len(a.used)
	for _, changes := range chunks {
		for i := range changes {
			ts := a.table(changes[i].Table)
			if ts == nil {
				return fmt.Errorf("change of %s, which is not in the mirror", changes[i].Table)
			}
			if ts.err != nil {
				return ts.err
			}
			if !ts.used {
				ts.used = true
				a.used = append(a.used, ts)
			}
		}
	}
	if err := a.prepare(ctx, a.used[n:]); err != nil {
		return err // a table's (tableFault) where it is
	}
	for _, changes := range chunks {
		for i := range changes {
			c := &changes[i]
			ts := a.table(c.Table)
			if err := a.applyChange(ctx, ts, c); err != nil {
				return tableFault(ts.Source, fmt.Errorf("change %d (%c of %s): %w", base+i, c.Kind, c.Table, err))
			}
			switch c.Kind {
			case connectors.Insert:
				ts.counts.Inserts++
			case connectors.Update:
				ts.counts.Updates++
			case connectors.Delete:
				ts.counts.Deletes++
			}
		}
		base += len(changes)
	}
	for _, ts := range a.used {
		if err := a.flush(ctx, ts); err != nil {
			return tableFault(ts.Source, err)
		}
	}
	return nil
}

// table returns the state of source table name, or nil. Consecutive
// changes are mostly of one table: the last one found is checked first.
func (a *Applier) table(name connectors.TableName) *tableState {
	if a.last != nil && a.last.Source == name {
		return a.last
	}
	ts := a.tables[name]
	if ts != nil {
		a.last = ts
	}
	return ts
}

// Commit records end (which must be set) as the mirror's position in the
// open transaction and commits it. It returns the change counts per source
// table of the changes added. When end is not beyond the position Begin
// returned, the transaction was applied before: it is rolled back and the
// counts are empty. On error the transaction is rolled back (but when the
// error is a failed COMMIT, the server may have committed).
func (a *Applier) Commit(ctx context.Context, end connectors.Position) (map[connectors.TableName]TableCounts, error) {
	return a.commitWith(ctx, end, nil)
}

// CommitTables is Commit for a caller that keeps its own per-table
// positions (a table resync catching up): the transaction commits even if
// end is not beyond the recorded position (which then stays: it never
// moves back), and first records the resync states in put
// (PutTableState) and forgets those of the tables in drop
// (DeleteTableState).
func (a *Applier) CommitTables(ctx context.Context, end connectors.Position, put []connectors.TableState, drop []connectors.TableName) (map[connectors.TableName]TableCounts, error) {
	return a.commitWith(ctx, end, func(tx pgx.Tx) error {
		for _, t := range drop {
			if err := DeleteTableState(ctx, tx, a.meta, a.mirror, t); err != nil {
				return err
			}
		}
		for _, st := range put {
			if err := PutTableState(ctx, tx, a.meta, a.mirror, st); err != nil {
				return err
			}
		}
		return nil
	})
}

// commitWith commits; when before is not nil, the transaction commits even
// if end is not beyond the recorded position, and before runs in it first.
func (a *Applier) commitWith(ctx context.Context, end connectors.Position, before func(pgx.Tx) error) (map[connectors.TableName]TableCounts, error) {
	if a.tx == nil {
		return nil, errors.New("commit: no open transaction")
	}
	if end == "" {
		a.abort(ctx)
		return nil, errors.New("commit: no end position")
	}
	if !a.recorded.Before(end) && before == nil {
		return map[connectors.TableName]TableCounts{}, a.Rollback(ctx)
	}
	if before != nil {
		if err := before(a.tx); err != nil {
			a.abort(ctx)
			return nil, err
		}
	}
	if err := a.setPosition(ctx, connectors.MaxPosition(end, a.recorded)); err != nil {
		a.abort(ctx)
		return nil, err
	}
	counts := make(map[connectors.TableName]TableCounts, len(a.used))
	for _, ts := range a.used {
		counts[ts.Source] = ts.counts
	}
	err := a.tx.Commit(ctx)
	a.finish(err == nil)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return counts, nil
}

// Rollback rolls the open transaction back, if any. Idempotent.
func (a *Applier) Rollback(ctx context.Context) error {
	if a.tx == nil {
		return nil
	}
	err := a.tx.Rollback(ctx)
	a.finish(false)
	return err
}

// InTx reports whether a transaction is open.
func (a *Applier) InTx() bool { return a.tx != nil }

// abort rolls the open transaction back after an error, which is the one
// to report.
func (a *Applier) abort(ctx context.Context) {
	a.rollback(ctx)
	a.added, a.nAdded = nil, 0
}

// rollback rolls the database transaction back and forgets what it did,
// but not the changes added (see redo).
func (a *Applier) rollback(ctx context.Context) {
	if a.tx == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = a.tx.Rollback(rctx)
	added, n := a.added, a.nAdded
	a.finish(false)
	a.added, a.nAdded = added, n
}

// finish forgets the transaction that just ended. A rolled-back one also
// took the staging tables it created with it.
func (a *Applier) finish(committed bool) {
	for _, ts := range a.used {
		ts.red.reset()
		ts.nextGroup, ts.staged = 0, 0
		ts.used, ts.counts = false, TableCounts{}
	}
	if !committed {
		for _, ts := range a.created {
			ts.stage = ""
		}
	}
	clear(a.used)
	a.used, a.created = a.used[:0], a.created[:0]
	a.tx, a.recorded, a.env = nil, "", flushEnv{}
	a.added, a.nAdded = nil, 0
}

// prepare (re)creates the staging tables of used whose schema changed,
// in the open transaction (a rollback undoes that: see finish). Replaced
// staging tables are dropped by the next Begin.
func (a *Applier) prepare(ctx context.Context, used []*tableState) error {
	for _, ts := range used {
		if !ts.stale() {
			continue
		}
		if err := validateDestTable(ts.DestTable); err != nil {
			return err
		}
		old := ts.stage
		if err := ts.createStage(ctx, a.conn); err != nil {
			return tableFault(ts.Source, err)
		}
		a.created = append(a.created, ts)
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
	if err := a.flush(ctx, ts); err != nil {
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
	} else if err := a.flush(ctx, ts); err != nil {
		return err
	}
	if _, err := a.conn.Exec(ctx, ts.truncateSQL()); err != nil {
		return fmt.Errorf("truncate %s: %w", ts.Dest, err)
	}
	return nil
}
