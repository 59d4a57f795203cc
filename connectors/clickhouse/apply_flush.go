package clickhouse

import (
	"context"
	"fmt"

	"github.com/sluicedb/sluice/connectors"
)

// flush writes t's window to the table, filling values its entries lack
// from the destination's current rows, and empties it. When the sorting
// key has columns outside the primary key (layout.moves), the current rows
// of every entry's key are read, and each live or deleted one under
// another sorting key than the entry's row, not newer than the entry, is
// superseded by a DeletedMoved row (see superseded), written before the
// entries. Rows of earlier windows are current rows like any other.
func (a *Applier) flush(ctx context.Context, t *chTable) error {
	w := &t.win
	defer func() {
		a.held -= w.arena.size
		w.reset()
		if i := indexOf(a.active, t); i >= 0 {
			a.active = append(a.active[:i], a.active[i+1:]...)
		}
	}()
	if len(w.entries) == 0 {
		return nil
	}
	if a.staging {
		return a.stageWindow(ctx, t)
	}
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
	var fill []string // by entry, when some lack values: the key of the row to take them from
	var own []string  // by entry, when t.l.moves: the entry's own key
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
			if fill == nil {
				fill = make([]string, len(w.entries))
			}
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
	var fills [][]any // by entry: the current row whose values it takes (nil: none)
	if fill != nil {
		fills = make([][]any, len(w.entries))
		for i, k := range fill {
			if k != "" {
				fills[i] = current(cur[k])
			}
		}
	}
	now := syncedNow()
	if own != nil {
		moved, err := t.superseded(w.entries, fills, own, cur)
		if err != nil {
			return err
		}
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
	return t.sendEntries(ctx, a.conn, t.l.dest, w.entries, fills, now)
}

func indexOf(ts []*chTable, t *chTable) int {
	for i, x := range ts {
		if x == t {
			return i
		}
	}
	return -1
}

// superseded returns the rows that replace, with DeletedMoved and the
// entry's version, the live and deleted rows of the entries' keys (own, by
// entry; cur, read back) that lie under another sorting key than the
// entry's row (its values, completed by fills) and are not newer than the
// entry: a key keeps one row that is live or deleted, as with a sorting
// key of the primary key (a deleted row is no longer one once its key is
// inserted again). A row of the entry's own version is one an earlier
// window of the transaction wrote (or a truncate of the transaction), or
// one a replay finds: superseding it is right in the first case, and in
// the second leaves the same rows as the batch's first run, since a
// replayed batch writes its windows' rows again in order. A moved row is
// never superseded: it is no row of the key any more.
func (t *chTable) superseded(entries []entry, fills [][]any, own []string, cur map[string][]curRow) ([]curRow, error) {
	var out []curRow
	for i := range entries {
		prev := cur[own[i]]
		if len(prev) == 0 {
			continue
		}
		var fillRow []any
		if fills != nil {
			fillRow = fills[i]
		}
		sk, err := t.sortKey(entries[i].vals, fillRow)
		if err != nil {
			return nil, err
		}
		for _, r := range prev {
			if r.deleted != DeletedMoved && r.version <= entries[i].version && t.l.sortKeyOf(r.vals) != sk {
				out = append(out, curRow{vals: r.vals, version: entries[i].version, deleted: DeletedMoved})
			}
		}
	}
	return out, nil
}

// sortKey returns the canonical form (keyString) of the sorting-key values
// of the row vals completed by fillRow, as sendEntries writes them.
func (t *chTable) sortKey(vals []connectors.Value, fillRow []any) (string, error) {
	key := make([]any, len(t.l.sortIdx))
	for i, j := range t.l.sortIdx {
		if vals[j].Kind == connectors.Unchanged && fillRow != nil {
			key[i] = fillRow[j]
			continue
		}
		c := t.cv.cols[j] // a copy: NULLs are counted when the row is written
		x, err := t.cv.value(&c, vals[j])
		if err != nil {
			return "", fmt.Errorf("column %q: %w", t.l.colName(j), err)
		}
		key[i] = x
	}
	return keyString(key), nil
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
