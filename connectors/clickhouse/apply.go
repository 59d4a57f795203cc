package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/sluicedb/sluice/connectors"
)

// The ClickHouse applier applies batches and reports the NULLs it stored as
// defaults in sorting-key columns.
var (
	_ connectors.Applier         = (*Applier)(nil)
	_ connectors.NullKeyReporter = (*Applier)(nil)
)

// Applier applies CDC changes to ClickHouse tables made by CreateTableDDL:
// the counterpart of postgres.Applier, with the same method set, so the CDC
// batcher drives either.
//
// ClickHouse has no transactions. Begin reads the recorded position. Add
// folds the changes into a window per table: one row per changed primary
// key (the last change wins), copied out of the caller's slices, with the
// change's version (Change.Version) as the row version; a transaction sent
// before its commit comes without versions and is written to stage tables
// until Commit (apply_stage.go). When a window holds windowKeys keys, or the windows together hold
// windowBytes bytes of values, Add writes it (one large insert) and starts
// a new one, so that memory stays bounded whatever the size of the source
// transaction. Commit writes what the windows hold, then records the
// position (SetPosition). A crash anywhere before that leaves the position
// behind, so the batch is streamed and written again: the same rows with
// the same versions, which ReplacingMergeTree collapses.
//
// A delete writes the row again with the deleted flag set, keeping the key
// and the last values; a primary-key change writes the delete of the old
// key. Values the change lacks (a delete without REPLICA IDENTITY FULL
// carries only the key; an update may carry unchanged TOAST values) are
// taken from the destination's current row (SELECT ... FINAL), read just
// before the window is written: rows of earlier windows of the same
// transaction were written, so they are found there. A truncate writes the
// table's window, then marks every live row deleted at its place in the
// batch.
//
// ReplacingMergeTree collapses rows by sorting key. When the sorting key
// has columns outside the primary key, an insert or update can put a key's
// row under another sorting key than its live row in the destination (one
// loaded by the initial copy, or written by an earlier batch or window):
// for such tables the current rows of every key of a window are read (one
// query per 500 keys), and each live or deleted row under a sorting key
// other than the new row's, not newer than the new row, is superseded by a
// copy of it with the deleted column DeletedMoved and the change's version
// (see superseded). Within a window only the destination's rows and the
// window's last row of a key matter: rows in between are never written.
//
// The Applier of a fenced Destination checks the lease epoch before each
// batch and before recording its position (fence.go).
//
// An Applier is not safe for concurrent use. It does not own conn; conn
// must not be used by others while Add or Commit runs.
type Applier struct {
	conn    driver.Conn
	info    ServerInfo
	db      string
	mirror  string
	orderBy map[connectors.TableName][]string
	tables  map[connectors.TableName]*chTable

	// windowKeys and windowBytes bound what the windows hold before Add
	// writes them: keys of one table's window, and bytes of values copied
	// into all of them (see window.size). Tests make them small.
	windowKeys  int
	windowBytes int

	inTx     bool
	recorded connectors.Position
	// A transaction sent before its commit (apply_stage.go): staging, its
	// changes have no version and go to stages; lateVersion is theirs
	// (SetVersion); txChanges counts the transaction's changes.
	// leftover are stages of a transaction that ended in an error, dropped
	// by the next Begin or Rollback.
	staging     bool
	lateVersion uint64
	stages      []*stage
	leftover    []*stage
	txChanges   int
	active      []*chTable // tables whose windows hold changes, in first-change order
	held        int        // bytes the active windows hold
	counts      map[connectors.TableName]connectors.TableCounts
	nullKeys    map[connectors.TableName]map[string]int64 // of the last commit
	// epoch is the lease epoch the Destination was fenced with (0: not
	// fenced), checked before each batch and before its position is
	// recorded (checkEpoch, fence.go).
	epoch int64
}

// Default window bounds: large enough for inserts of large native blocks,
// small enough that a window's copies and the block built from it stay
// near 50 MB of heap (pgbench_accounts rows: about 11 MB of copies for
// 50,000 keys). Measured with 1M-row transactions, 100,000 keys took the
// process to twice the memory for no more speed.
const (
	defaultWindowKeys  = 50_000
	defaultWindowBytes = 16 << 20
)

// chTable is one mirrored table's state.
type chTable struct {
	dt      connectors.DestTable
	orderBy []string // the sorting key asked for (nil: the primary key)
	l       *layout
	cv      *converter
	err     error // why the table cannot be applied to
	// ncols is len(dt.Schema.Columns) when l was built (columns may be
	// appended between transactions).
	ncols int
	win   window // the changes of the open transaction not yet written
}

// NewApplier returns an applier of mirror's changes to tables, recording
// positions in database db (whose metadata tables it creates if missing).
// A table's sorting key is its OrderBy, else orderBy's entry for its
// source table (orderBy may be nil; absent or empty: the primary key).
// Each DestTable's Dest is qualified by its ClickHouse database; its
// SoftDeleteColumn and SyncedAtColumn name the deleted and synced-at
// columns ("" for the defaults).
func NewApplier(ctx context.Context, conn driver.Conn, info ServerInfo, db, mirror string, tables []connectors.DestTable,
	orderBy map[connectors.TableName][]string) (*Applier, error) {
	if mirror == "" {
		return nil, errors.New("new applier: mirror name is empty")
	}
	a := &Applier{conn: conn, info: info, db: db, mirror: mirror, orderBy: orderBy,
		windowKeys: defaultWindowKeys, windowBytes: defaultWindowBytes}
	a.SetTables(tables)
	for _, t := range a.tables {
		if t.err != nil {
			return nil, t.err
		}
	}
	if err := EnsureMetadata(ctx, conn, db); err != nil {
		return nil, err
	}
	if err := dropStagesLeft(ctx, conn, db, mirror); err != nil {
		return nil, err
	}
	return a, nil
}

// SetTables replaces the table set (after a schema change or a resync). An
// invalid table makes every batch that touches it fail. It must not be
// called while a transaction is open.
func (a *Applier) SetTables(tables []connectors.DestTable) {
	a.tables = make(map[connectors.TableName]*chTable, len(tables))
	for _, dt := range tables {
		t := &chTable{dt: dt}
		if _, dup := a.tables[dt.Source]; dup {
			t.err = fmt.Errorf("table %s is mirrored twice", dt.Source)
		} else {
			t.orderBy = dt.OrderBy
			if len(t.orderBy) == 0 {
				t.orderBy = a.orderBy[dt.Source]
			}
			t.err = t.build(a.info)
		}
		a.tables[dt.Source] = t
	}
}

// build maps the table's columns.
func (t *chTable) build(info ServerInfo) error {
	if t.dt.Schema == nil {
		return fmt.Errorf("table %s: no schema", t.dt.Source)
	}
	l, err := newLayout(t.dt.Dest, t.dt.Schema, info, TableOptions{OrderBy: t.orderBy,
		DeletedColumn: t.dt.SoftDeleteColumn, SyncedAtColumn: t.dt.SyncedAtColumn})
	if err != nil {
		return err
	}
	t.l, t.cv, t.ncols = l, newConverter(l.cols), len(t.dt.Schema.Columns)
	return nil
}

// Begin starts a transaction and returns the position recorded for the
// mirror ("" if none). Only one transaction is open at a time.
func (a *Applier) Begin(ctx context.Context) (connectors.Position, error) {
	if a.inTx {
		return "", errors.New("begin: a transaction is already open")
	}
	if err := a.checkEpoch(ctx); err != nil {
		return "", err
	}
	if err := a.dropLeftover(ctx); err != nil {
		return "", err
	}
	pos, _, err := LastPosition(ctx, a.conn, a.db, a.mirror)
	if err != nil {
		return "", fmt.Errorf("begin: %w", err)
	}
	a.inTx, a.recorded = true, pos
	a.counts = make(map[connectors.TableName]connectors.TableCounts)
	a.nullKeys = nil
	for _, t := range a.tables {
		if t.l != nil {
			t.l.takeNullKeys(t.cv.cols) // those of a batch that failed are written again
		}
	}
	return pos, nil
}

// NullKeys returns, by source table and column, how many NULLs the last
// successful Commit stored as the type's default in sorting-key columns
// that are nullable in the source (see NullableKeyColumns); nil when none.
// Rows are counted as written: a key whose changes fell into two windows
// of the transaction counts in each.
func (a *Applier) NullKeys() map[connectors.TableName]map[string]int64 {
	return a.nullKeys
}

// Add folds the changes of the slices into the transaction, after those
// added before, and writes the windows that grow past their bounds. It
// copies what it keeps: the caller may reuse the slices and the values'
// bytes once Add returns. A change of a table not in the set or of an
// invalid one, a malformed change, or a failed write is an error that
// ends the transaction (as Rollback does).
func (a *Applier) Add(ctx context.Context, changes ...[]connectors.Change) error {
	if !a.inTx {
		return errors.New("add changes: no open transaction")
	}
	for _, cs := range changes {
		for i := range cs {
			if err := a.add(ctx, &cs[i]); err != nil {
				a.finish()
				return err
			}
		}
	}
	return nil
}

// add counts and folds one change, writing windows when they are full.
func (a *Applier) add(ctx context.Context, c *connectors.Change) error {
	t := a.tables[c.Table]
	if t == nil {
		return fmt.Errorf("change of %s, which is not in the mirror", c.Table)
	}
	if t.err != nil {
		return t.err
	}
	n := a.counts[c.Table]
	switch c.Kind {
	case connectors.Insert:
		n.Inserts++
	case connectors.Update:
		n.Updates++
	case connectors.Delete:
		n.Deletes++
	}
	a.counts[c.Table] = n
	if err := a.stageFor(t, c); err != nil {
		return err
	}
	if t.ncols != len(t.dt.Schema.Columns) {
		// Columns were appended to the schema in place: the rows folded
		// already lack them (Unchanged), as shorter rows do. The NULLs
		// counted in windows written before carry over.
		nulls := t.l.takeNullKeys(t.cv.cols)
		if err := t.build(a.info); err != nil {
			return err
		}
		for i := range t.cv.cols {
			t.cv.cols[i].nulls += nulls[t.l.colName(i)]
		}
		before := t.win.arena.size
		t.win.widen(t.ncols)
		a.held += t.win.arena.size - before
	}
	if c.Kind == connectors.Truncate {
		if err := a.flush(ctx, t); err != nil {
			return tableFault(c.Table, err)
		}
		return tableFault(c.Table, a.truncate(ctx, t, c.Version))
	}
	if len(t.win.entries) == 0 {
		a.active = append(a.active, t)
	}
	before := t.win.arena.size
	if err := t.fold(c); err != nil {
		return fmt.Errorf("change (%c of %s): %w", c.Kind, c.Table, err)
	}
	a.held += t.win.arena.size - before
	switch {
	case len(t.win.entries) >= a.windowKeys:
		return tableFault(c.Table, a.flush(ctx, t))
	case a.held >= a.windowBytes:
		return a.flushAll(ctx)
	}
	return nil
}

// flushAll writes every window.
func (a *Applier) flushAll(ctx context.Context) error {
	for len(a.active) > 0 {
		t := a.active[0]
		if err := a.flush(ctx, t); err != nil {
			return tableFault(t.dt.Source, err) // a table's (connectors.TableError) where it is
		}
	}
	return nil
}

// Commit writes what the windows hold and then records end (which must be
// set) as the mirror's position. It returns the change counts per source
// table (by kind as received). When end is not beyond the position Begin
// returned, the batch was applied before: nothing more is written and the
// counts are empty (rows Add wrote are the same rows, with the same
// versions, as those written then). On error the transaction ends with
// the position unchanged; rows already written are written again,
// identically, when the batch is replayed.
func (a *Applier) Commit(ctx context.Context, end connectors.Position) (map[connectors.TableName]connectors.TableCounts, error) {
	if !a.inTx {
		return nil, errors.New("commit: no open transaction")
	}
	defer a.finish()
	if end == "" {
		return nil, errors.New("commit: no end position")
	}
	if !a.recorded.Before(end) {
		return map[connectors.TableName]connectors.TableCounts{}, nil
	}
	if err := a.flushAll(ctx); err != nil {
		return nil, err
	}
	if err := a.checkEpoch(ctx); err != nil {
		return nil, err
	}
	if a.staging {
		if err := a.commitStages(ctx); err != nil {
			return nil, err
		}
	}
	if err := SetPositionAt(ctx, a.conn, a.db, a.mirror, end, a.epoch); err != nil {
		return nil, err
	}
	for src, t := range a.tables {
		if t.l == nil {
			continue
		}
		if n := t.l.takeNullKeys(t.cv.cols); n != nil {
			if a.nullKeys == nil {
				a.nullKeys = make(map[connectors.TableName]map[string]int64)
			}
			a.nullKeys[src] = n
		}
	}
	return a.counts, nil
}

// Rollback ends the transaction without recording a position. Idempotent.
// ClickHouse has no transactions: it forgets only what the windows hold.
// Rows Add already wrote stay, but they are rows a replay writes again
// identically: adding the same changes again (same versions) in a new
// transaction and committing converges to the same state. The stages of a
// transaction sent before its commit are dropped (one that cannot be is
// dropped when its table's next stage is made).
func (a *Applier) Rollback(ctx context.Context) error {
	a.finish()
	return a.dropLeftover(ctx)
}

// InTx reports whether a transaction is open.
func (a *Applier) InTx() bool { return a.inTx }

// finish ends the transaction and forgets what the windows hold.
func (a *Applier) finish() {
	for _, t := range a.tables {
		t.win.release()
	}
	a.inTx, a.recorded, a.active, a.held = false, "", nil, 0
	a.leftover = append(a.leftover, a.stages...)
	a.staging, a.lateVersion, a.stages, a.txChanges = false, 0, nil, 0
}

// truncate marks every live row of the table deleted, with version.
func (a *Applier) truncate(ctx context.Context, t *chTable, version uint64) error {
	l := t.l
	cols := make([]string, len(l.schema.Columns))
	for i, c := range l.schema.Columns {
		cols[i] = quoteIdent(c.Name)
	}
	del := quoteIdent(l.opts.DeletedColumn)
	q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s, toUInt64(%d), toUInt8(1), toDateTime(%d) FROM %s FINAL WHERE %s = 0",
		qualified(l.dest), l.columnList(), strings.Join(cols, ", "), version, syncedNow().Unix(), qualified(l.dest), del)
	if err := a.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("truncate %s: %w", l.dest, err)
	}
	return nil
}
