package clickhouse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"github.com/sluicedb/sluice/connectors"
)

// Folding a table's changes into a window: one entry per primary key, the
// last change winning, with copies of the values it keeps (the applier's
// caller reuses its slices).

// entry is the folded state of one primary key within a window.
type entry struct {
	// vals is the row to write, in schema column order (t.ncols values);
	// Unchanged marks a value to take from the destination's current row
	// at fillKey.
	vals    []connectors.Value
	fillKey []connectors.Value // a row whose key columns name that row
	deleted bool
	version uint64
}

// window folds one table's changes between writes: a window is written
// when full, before a truncate, and at Commit.
type window struct {
	index   map[string]int
	entries []entry
	keyBuf  []byte
	oldBuf  []byte
	arena   arena
}

// reset empties w, keeping its buffers for the next window.
func (w *window) reset() {
	clear(w.index)
	clear(w.entries)
	w.entries = w.entries[:0]
	w.arena.reset()
}

// keepEntries is the most entries whose buffers a window keeps between
// transactions: an idle table holds little memory after a large one (a
// map never shrinks).
const keepEntries = 1024

// release empties w at the end of a transaction.
func (w *window) release() {
	if cap(w.entries) > keepEntries || cap(w.arena.vals) > keepEntries || cap(w.arena.data) > 16*minDataSlab {
		*w = window{}
		return
	}
	w.reset()
}

// widen pads the rows of w's entries to n values (Unchanged): the schema
// gained columns while they were held.
func (w *window) widen(n int) {
	for i := range w.entries {
		if e := &w.entries[i]; len(e.vals) < n {
			e.vals = w.arena.row(e.vals, n)
		}
	}
}

// arena holds the copies of a window's values in slabs: a window's memory
// is what its changes hold, whatever the caller does with its own slices,
// and it is reused once the window is written.
type arena struct {
	vals []connectors.Value // the current slab, never grown past its capacity
	data []byte             // the current slab of value bytes, likewise
	size int                // bytes copied in since reset: the window's weight
}

// Slab sizes: a slab is twice the size of the one before, from the
// minimum (small transactions stay small) to the maximum. A value larger
// than bigValue gets an allocation of its own.
const (
	minValSlab  = 64
	maxValSlab  = 8192
	minDataSlab = 4 << 10
	maxDataSlab = 1 << 20
	bigValue    = maxDataSlab / 8
)

// valueSize is the size of a connectors.Value header.
const valueSize = int(unsafe.Sizeof(connectors.Value{}))

// row returns a copy of src padded to n values with Unchanged (len(src)
// <= n), its bytes copied too.
func (a *arena) row(src []connectors.Value, n int) []connectors.Value {
	if cap(a.vals)-len(a.vals) < n {
		a.vals = make([]connectors.Value, 0, max(n, min(max(2*cap(a.vals), minValSlab), maxValSlab)))
	}
	start := len(a.vals)
	a.vals = a.vals[:start+n]
	out := a.vals[start : start+n : start+n]
	for i := range out {
		if i < len(src) {
			out[i] = connectors.Value{Kind: src[i].Kind, Data: a.bytes(src[i].Data)}
		} else {
			out[i] = connectors.Value{Kind: connectors.Unchanged}
		}
	}
	a.size += n * valueSize
	return out
}

// bytes returns a copy of d (nil when empty).
func (a *arena) bytes(d []byte) []byte {
	if len(d) == 0 {
		return nil
	}
	a.size += len(d)
	if len(d) > bigValue {
		return bytes.Clone(d)
	}
	if cap(a.data)-len(a.data) < len(d) {
		a.data = make([]byte, 0, max(len(d), min(max(2*cap(a.data), minDataSlab), maxDataSlab)))
	}
	start := len(a.data)
	a.data = append(a.data, d...)
	return a.data[start:len(a.data):len(a.data)]
}

// reset forgets the copies, reusing the current slabs (the earlier ones
// are left to the collector).
func (a *arena) reset() {
	clear(a.vals)
	a.vals, a.data, a.size = a.vals[:0], a.data[:0], 0
}

// check checks a change's values: at most one per column, key columns set
// (a row shorter than the table lacks trailing columns: they are
// Unchanged).
func (t *chTable) check(vals []connectors.Value, what string) error {
	if len(vals) > t.ncols {
		return fmt.Errorf("%s has %d values, table has %d columns", what, len(vals), t.ncols)
	}
	for _, i := range t.l.keyIdx {
		if i >= len(vals) || vals[i].Kind != connectors.Binary {
			return fmt.Errorf("%s: primary key column %q is not set", what, t.l.colName(i))
		}
	}
	return nil
}

// key appends the encoded key columns of vals to buf[:0].
func (t *chTable) key(buf []byte, vals []connectors.Value) []byte {
	b := buf[:0]
	for _, i := range t.l.keyIdx {
		b = binary.BigEndian.AppendUint32(b, uint32(len(vals[i].Data)))
		b = append(b, vals[i].Data...)
	}
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
	if w.index == nil {
		w.index = make(map[string]int)
	}
	w.index[string(key)] = len(w.entries)
	w.entries = append(w.entries, e)
}

func hasUnchanged(vals []connectors.Value) bool {
	return slices.ContainsFunc(vals, func(v connectors.Value) bool { return v.Kind == connectors.Unchanged })
}

// followed returns the entry for a new row v (the caller's) at a key: a
// copy of v, completed, where v lacks values, by the pending entry prev of
// the key (nil if none).
func (t *chTable) followed(prev *entry, v []connectors.Value, version uint64) entry {
	vals := t.win.arena.row(v, t.ncols)
	if prev == nil || !hasUnchanged(vals) {
		return entry{vals: vals, fillKey: vals, version: version}
	}
	for i := range vals {
		if vals[i].Kind == connectors.Unchanged {
			vals[i] = prev.vals[i] // the arena's already
		}
	}
	return entry{vals: vals, fillKey: prev.fillKey, version: version}
}

// fold folds one row change into t's window, copying what it keeps.
func (t *chTable) fold(c *connectors.Change) error {
	w := &t.win
	switch c.Kind {
	case connectors.Insert, connectors.Update:
		if err := t.check(c.New, "new row"); err != nil {
			return err
		}
		w.keyBuf = t.key(w.keyBuf, c.New)
		if c.Kind == connectors.Update && c.Old != nil {
			if err := t.check(c.Old, "old key"); err != nil {
				return err
			}
			w.oldBuf = t.key(w.oldBuf, c.Old)
			if !bytes.Equal(w.oldBuf, w.keyBuf) {
				// The row moved: the old key is deleted, keeping its last
				// values; the new one takes what it lacks from the old row.
				prev := t.deleteEntry(w.oldBuf, c.Old, c.Version)
				w.put(w.keyBuf, t.followed(&prev, c.New, c.Version))
				return nil
			}
		}
		w.put(w.keyBuf, t.followed(w.get(w.keyBuf), c.New, c.Version))
		return nil
	case connectors.Delete:
		if err := t.check(c.Old, "old key"); err != nil {
			return err
		}
		w.oldBuf = t.key(w.oldBuf, c.Old)
		t.deleteEntry(w.oldBuf, c.Old, c.Version)
		return nil
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}

// deleteEntry marks key deleted and returns its entry (the row's last
// values as far as known). old (the caller's) has the key set; without
// REPLICA IDENTITY FULL its other values are unknown.
func (t *chTable) deleteEntry(key []byte, old []connectors.Value, version uint64) entry {
	w := &t.win
	e := w.get(key)
	if e == nil {
		var vals []connectors.Value
		if t.dt.Schema.ReplicaIdentityFull {
			vals = w.arena.row(old, t.ncols)
		} else {
			vals = w.arena.row(nil, t.ncols)
			for _, i := range t.l.keyIdx {
				vals[i].Kind, vals[i].Data = connectors.Binary, w.arena.bytes(old[i].Data)
			}
		}
		w.put(key, entry{vals: vals, fillKey: vals})
		e = w.get(key)
	}
	e.deleted, e.version = true, version
	return *e
}
