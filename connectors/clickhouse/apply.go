package clickhouse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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
// ClickHouse has no transactions. Begin reads the recorded position; Add
// only buffers; Commit writes, per table, one row per changed primary key
// (the last change wins) with the change's version (Change.Version, which
// must be set) as the row version, then records the position
// (SetPosition). A
// crash in between leaves the position behind, so the batch is streamed and
// written again: the same rows with the same versions, which
// ReplacingMergeTree collapses. A delete writes the row again with the
// deleted flag set, keeping the key and the last values; a primary-key
// change writes the delete of the old key. Values the change lacks (a
// delete without REPLICA IDENTITY FULL carries only the key; an update may
// carry unchanged TOAST values) are taken from the destination's current
// row (SELECT ... FINAL), read before the batch's rows are written. A
// truncate marks every live row deleted at its place in the batch.
//
// ReplacingMergeTree collapses rows by sorting key. When the sorting key
// has columns outside the primary key, an insert or update can put a key's
// row under another sorting key than its live row in the destination (one
// loaded by the initial copy or written by an earlier batch): for such
// tables the current rows of every key of the batch are read (one query per
// table and window), and each live or deleted row under a sorting key other
// than the new row's is superseded by a copy of it with the deleted column
// DeletedMoved and the change's version. Only the destination's rows and
// the batch's last row of a key matter: rows in between are never written.
//
// An Applier is not safe for concurrent use. It does not own conn; conn
// must not be used by others while Commit runs.
type Applier struct {
	conn    driver.Conn
	info    ServerInfo
	db      string
	mirror  string
	orderBy map[connectors.TableName][]string
	tables  map[connectors.TableName]*chTable

	inTx     bool
	recorded connectors.Position
	added    [][]connectors.Change
	counts   map[connectors.TableName]connectors.TableCounts
	nullKeys map[connectors.TableName]map[string]int64 // of the last commit
}

// chTable is one mirrored table's state.
type chTable struct {
	dt  connectors.DestTable
	l   *layout
	cv  *converter
	err error // why the table cannot be applied to
	// ncols is len(dt.Schema.Columns) when l was built (columns may be
	// appended between transactions).
	ncols int
}

// NewApplier returns an applier of mirror's changes to tables, recording
// positions in database db (whose metadata tables it creates if missing).
// A table's sorting key is its OrderBy, else orderBy's entry for its
// source table (orderBy may be nil; absent or empty: the primary key). Each DestTable's Dest is qualified by its ClickHouse
// database; its SoftDeleteColumn and SyncedAtColumn name the deleted and
// synced-at columns ("" for the defaults).
func NewApplier(ctx context.Context, conn driver.Conn, info ServerInfo, db, mirror string, tables []connectors.DestTable,
	orderBy map[connectors.TableName][]string) (*Applier, error) {
	if mirror == "" {
		return nil, errors.New("new applier: mirror name is empty")
	}
	a := &Applier{conn: conn, info: info, db: db, mirror: mirror, orderBy: orderBy}
	a.SetTables(tables)
	for _, t := range a.tables {
		if t.err != nil {
			return nil, t.err
		}
	}
	if err := EnsureMetadata(ctx, conn, db); err != nil {
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
			orderBy := dt.OrderBy
			if len(orderBy) == 0 {
				orderBy = a.orderBy[dt.Source]
			}
			t.err = t.build(a.info, orderBy)
		}
		a.tables[dt.Source] = t
	}
}

// build maps the table's columns.
func (t *chTable) build(info ServerInfo, orderBy []string) error {
	if t.dt.Schema == nil {
		return fmt.Errorf("table %s: no schema", t.dt.Source)
	}
	l, err := newLayout(t.dt.Dest, t.dt.Schema, info, TableOptions{OrderBy: orderBy,
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
func (a *Applier) NullKeys() map[connectors.TableName]map[string]int64 {
	return a.nullKeys
}

// Add buffers the changes of the slices, after those added before. The
// applier keeps the slices (not a copy) until the transaction ends: the
// caller must not modify them before. A change of a table not in the set,
// or of an invalid one, is an error that ends the transaction.
func (a *Applier) Add(ctx context.Context, changes ...[]connectors.Change) error {
	if !a.inTx {
		return errors.New("add changes: no open transaction")
	}
	for _, cs := range changes {
		for i := range cs {
			c := &cs[i]
			t := a.tables[c.Table]
			if t == nil {
				a.finish()
				return fmt.Errorf("change of %s, which is not in the mirror", c.Table)
			}
			if t.err != nil {
				a.finish()
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
		}
		a.added = append(a.added, cs)
	}
	return nil
}

// Commit writes the changes added and then records end (which must be
// set) as the mirror's position. It returns the change counts per source
// table (by kind as received). When end is not beyond the position Begin
// returned, the batch was applied before: nothing is written and the counts
// are empty. On error the transaction ends with the position unchanged;
// rows already written are written again, identically, when the batch is
// replayed.
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
	if err := a.write(ctx); err != nil {
		return nil, err
	}
	if err := SetPosition(ctx, a.conn, a.db, a.mirror, end); err != nil {
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

// Rollback drops the changes added. Idempotent.
func (a *Applier) Rollback(ctx context.Context) error {
	a.finish()
	return nil
}

// InTx reports whether a transaction is open.
func (a *Applier) InTx() bool { return a.inTx }

func (a *Applier) finish() {
	a.inTx, a.recorded, a.added = false, "", nil
}

// entry is the folded state of one primary key within a window.
type entry struct {
	// vals is the row to write, in schema column order; Unchanged marks a
	// value to take from the destination's current row at fillKey.
	vals    []connectors.Value
	fillKey []connectors.Value // a row whose key columns name that row
	deleted bool
	version uint64
}

// window folds one table's changes between barriers (truncates).
type window struct {
	index   map[string]int
	entries []entry
	keyBuf  []byte
}

// write folds and writes every table's changes.
func (a *Applier) write(ctx context.Context) error {
	wins := make(map[*chTable]*window)
	var order []*chTable
	for _, cs := range a.added {
		for i := range cs {
			c := &cs[i]
			t := a.tables[c.Table]
			if t.ncols != len(t.dt.Schema.Columns) {
				if err := t.build(a.info, a.orderBy[c.Table]); err != nil {
					return err
				}
			}
			w := wins[t]
			if w == nil {
				w = &window{index: make(map[string]int)}
				wins[t] = w
				order = append(order, t)
			}
			version := c.Version
			if version == 0 {
				return fmt.Errorf("change (%c of %s) has no version", c.Kind, c.Table)
			}
			if c.Kind == connectors.Truncate {
				if err := a.flush(ctx, t, w); err != nil {
					return err
				}
				if err := a.truncate(ctx, t, version); err != nil {
					return err
				}
				continue
			}
			if err := t.fold(w, c, version); err != nil {
				return fmt.Errorf("change (%c of %s): %w", c.Kind, c.Table, err)
			}
		}
	}
	for _, t := range order {
		if err := a.flush(ctx, t, wins[t]); err != nil {
			return err
		}
	}
	return nil
}

// pad checks a change's values: at most one per column, key columns set.
// A row shorter than the schema lacks trailing columns: they are Unchanged.
func (t *chTable) pad(vals []connectors.Value, what string) ([]connectors.Value, error) {
	n := len(t.dt.Schema.Columns)
	if len(vals) > n {
		return nil, fmt.Errorf("%s has %d values, table has %d columns", what, len(vals), n)
	}
	if len(vals) < n {
		padded := make([]connectors.Value, n)
		copy(padded, vals)
		for i := len(vals); i < n; i++ {
			padded[i].Kind = connectors.Unchanged
		}
		vals = padded
	}
	for _, i := range t.l.keyIdx {
		if vals[i].Kind != connectors.Binary {
			return nil, fmt.Errorf("%s: primary key column %q is not set", what, t.l.colName(i))
		}
	}
	return vals, nil
}

// key encodes the key columns of vals into w's buffer (valid until the
// next call).
func (t *chTable) key(w *window, vals []connectors.Value) []byte {
	b := w.keyBuf[:0]
	for _, i := range t.l.keyIdx {
		b = binary.BigEndian.AppendUint32(b, uint32(len(vals[i].Data)))
		b = append(b, vals[i].Data...)
	}
	w.keyBuf = b
	return b
}

func (w *window) get(key []byte) *entry {
	if i, ok := w.index[string(key)]; ok {
		return &w.entries[i]
	}
	return nil
}

// put sets key's entry to e.
func (w *window) put(key []byte, e entry) {
	if i, ok := w.index[string(key)]; ok {
		w.entries[i] = e
		return
	}
	w.index[string(key)] = len(w.entries)
	w.entries = append(w.entries, e)
}

// merge returns next with its Unchanged values taken from prev.
func merge(prev, next []connectors.Value) []connectors.Value {
	out := slices.Clone(next)
	for i := range out {
		if out[i].Kind == connectors.Unchanged {
			out[i] = prev[i]
		}
	}
	return out
}

func hasUnchanged(vals []connectors.Value) bool {
	return slices.ContainsFunc(vals, func(v connectors.Value) bool { return v.Kind == connectors.Unchanged })
}

// followed returns the entry for a row v at key: v itself, or, when v
// lacks values, v completed by the pending entry prev (nil if none).
func followed(prev *entry, v []connectors.Value, version uint64) entry {
	if prev == nil || !hasUnchanged(v) {
		return entry{vals: v, fillKey: v, version: version}
	}
	return entry{vals: merge(prev.vals, v), fillKey: prev.fillKey, version: version}
}

// fold folds one row change into w.
func (t *chTable) fold(w *window, c *connectors.Change, version uint64) error {
	switch c.Kind {
	case connectors.Insert, connectors.Update:
		v, err := t.pad(c.New, "new row")
		if err != nil {
			return err
		}
		newKey := string(t.key(w, v))
		if c.Kind == connectors.Update && c.Old != nil {
			old, err := t.pad(c.Old, "old key")
			if err != nil {
				return err
			}
			oldKey := t.key(w, old)
			if string(oldKey) != newKey {
				// The row moved: the old key is deleted, keeping its last
				// values; the new one takes what it lacks from the old row.
				prev := t.deleteEntry(w, oldKey, old, version)
				w.put([]byte(newKey), followed(&prev, v, version))
				return nil
			}
		}
		w.put([]byte(newKey), followed(w.get([]byte(newKey)), v, version))
		return nil
	case connectors.Delete:
		old, err := t.pad(c.Old, "old key")
		if err != nil {
			return err
		}
		t.deleteEntry(w, t.key(w, old), old, version)
		return nil
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// deleteEntry marks key deleted and returns its entry (the row's last
// values as far as known). old has the key set; without REPLICA IDENTITY
// FULL its other values are unknown.
func (t *chTable) deleteEntry(w *window, key []byte, old []connectors.Value, version uint64) entry {
	e := w.get(key)
	if e == nil {
		vals := old
		if !t.dt.Schema.ReplicaIdentityFull {
			vals = make([]connectors.Value, len(old))
			for i := range vals {
				vals[i].Kind = connectors.Unchanged
			}
			for _, i := range t.l.keyIdx {
				vals[i] = old[i]
			}
		}
		w.put(key, entry{vals: vals, fillKey: old})
		e = w.get(key)
	}
	e.deleted, e.version = true, version
	return *e
}

// flush writes w's entries to the table, filling values they lack from the
// destination's current rows, and empties w. When the sorting key has
// columns outside the primary key (layout.moves), the current rows of every
// entry's key are read, and each live or deleted one under another sorting
// key than the entry's row, older than the entry, is superseded by a
// DeletedMoved row (see superseded), written before the entries.
func (a *Applier) flush(ctx context.Context, t *chTable, w *window) error {
	if len(w.entries) == 0 {
		return nil
	}
	defer func() {
		clear(w.index)
		clear(w.entries)
		w.entries = w.entries[:0]
	}()
	var keys [][]any
	seen := make(map[string]bool)
	want := func(vals []connectors.Value) (string, error) {
		k, err := t.keyValues(vals)
		if err != nil {
			return "", err
		}
		s := keyString(k)
		if !seen[s] {
			seen[s] = true
			keys = append(keys, k)
		}
		return s, nil
	}
	fill := make([]string, len(w.entries))
	var own []string // by entry, when t.l.moves: the entry's own key
	if t.l.moves {
		own = make([]string, len(w.entries))
	}
	for i := range w.entries {
		e := &w.entries[i]
		var err error
		if own != nil {
			if own[i], err = want(e.vals); err != nil {
				return err
			}
		}
		if hasUnchanged(e.vals) {
			if fill[i], err = want(e.fillKey); err != nil {
				return err
			}
		}
	}
	var cur map[string][]curRow
	if len(keys) > 0 {
		var err error
		if cur, err = t.l.readRows(ctx, a.conn, keys); err != nil {
			return err
		}
	}
	rows := make([][]any, len(w.entries))
	for i := range w.entries {
		e := &w.entries[i]
		var fillRow []any
		if fill[i] != "" {
			fillRow = current(cur[fill[i]])
		}
		row := make([]any, 0, len(e.vals))
		for j, v := range e.vals {
			if v.Kind == connectors.Unchanged && fillRow != nil {
				row = append(row, fillRow[j])
				continue
			}
			x, err := t.cv.value(&t.cv.cols[j], v)
			if err != nil {
				return fmt.Errorf("column %q: %w", t.l.colName(j), err)
			}
			row = append(row, x)
		}
		rows[i] = row
	}
	now := syncedNow()
	if own != nil {
		moved := superseded(t.l, w.entries, rows, own, cur)
		if len(moved) > 0 {
			// Before the entries: should a new row and a moved one ever
			// share a sorting key and a version, the later insert wins.
			err := t.l.send(ctx, a.conn, len(moved), func(i int, out []any) ([]any, error) {
				out = append(out, moved[i].vals...)
				return append(out, moved[i].version, uint8(DeletedMoved), now), nil
			})
			if err != nil {
				return err
			}
		}
	}
	return t.l.send(ctx, a.conn, len(w.entries), func(i int, out []any) ([]any, error) {
		e := &w.entries[i]
		out = append(out, rows[i]...)
		del := uint8(DeletedLive)
		if e.deleted {
			del = DeletedRow
		}
		return append(out, e.version, del, now), nil
	})
}

// superseded returns the rows that replace, with DeletedMoved and the
// entry's version, the live and deleted rows of the entries' keys (own, by
// entry; cur, read back) that lie under another sorting key than the
// entry's row (rows, by entry) and are older than the entry: a key keeps
// one row that is live or deleted, as with a sorting key of the primary
// key (a deleted row is no longer one once its key is inserted again). A
// replayed batch finds its own rows (same version) and writes nothing more.
func superseded(l *layout, entries []entry, rows [][]any, own []string, cur map[string][]curRow) []curRow {
	var out []curRow
	for i := range entries {
		prev := cur[own[i]]
		if len(prev) == 0 {
			continue
		}
		sk := l.sortKeyOf(rows[i])
		for _, r := range prev {
			if r.deleted != DeletedMoved && r.version < entries[i].version && l.sortKeyOf(r.vals) != sk {
				out = append(out, curRow{vals: r.vals, version: entries[i].version, deleted: DeletedMoved})
			}
		}
	}
	return out
}

// keyValues converts the key columns of vals.
func (t *chTable) keyValues(vals []connectors.Value) ([]any, error) {
	k := make([]any, len(t.l.keyIdx))
	for i, c := range t.l.keyIdx {
		x, err := t.cv.value(&t.cv.cols[c], vals[c])
		if err != nil {
			return nil, fmt.Errorf("key column %q: %w", t.l.colName(c), err)
		}
		k[i] = x
	}
	return k, nil
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
