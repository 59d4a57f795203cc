package postgres

import (
	"encoding/binary"

	"github.com/sluicedb/sluice/connectors"
)

// Reduction.
//
// The applier does not replay changes one by one. For each table it folds
// the changes of a "window" (the changes since the table was last flushed:
// at most those of one Add) into at most one pending operation per primary key, and a flush
// then applies all pending operations with a few set-based statements. This
// is correct because, within a window, operations on different keys touch
// different destination rows and so commute; only the order of operations on
// the same key matters, and that order is folded into the key's entry here.
//
// The reference semantics every fold must reproduce is "apply each change
// on its own, in commit order", with these per-change meanings:
//
//	upsert(V)  row := V (Insert, or Update whose new row is complete). When V
//	           has Unchanged columns (an Insert lacking a column), an existing
//	           row keeps its value there and a new row gets NULL.
//	update(V)  if the row exists, set its known (not Unchanged) columns.
//	           (Update whose new row has Unchanged TOAST columns.)
//	delete     hard: row := absent. soft: if the row exists, mark it deleted
//	           and keep its values.
//
// An entry is one of these operations and stands for the net effect of all
// folded changes, given any destination state at the start of the window:
//
//	prev \ next   | upsert(V)               | update(V)        | delete
//	--------------+-------------------------+------------------+---------------------
//	(none)        | upsert(V)               | update(V)        | delete
//	upsert(W)     | upsert(W<-V)            | upsert(W<-V)     | hard: delete
//	              |                         |                  | soft: upsert(W)+deleted
//	update(W)     | V complete: upsert(V)   | update(W<-V)     | hard: delete
//	              | else BARRIER            |                  | soft: update(W)+deleted
//	delete, hard  | upsert(V, Unchanged->NULL) | delete        | delete
//	delete, soft  | upsert(V)               | update(V)        | delete
//
// W<-V is V with its Unchanged columns taken from W ("merging Unchanged
// columns from an earlier full image of the same key"). Any complete upsert
// replaces whatever came before, which is what makes insert/delete/insert of
// one key fold to the last insert and delete-then-insert fold to an upsert.
// Hard delete forgets the earlier operations because the row ends absent
// whatever they did; soft delete must keep them (the row and its values stay,
// flagged). The one combination with no single-operation equivalent is an
// incomplete upsert after an update (is the row there or not decides which
// values survive): the applier then flushes the table (a barrier) and starts
// a new window. update after a hard delete stays a delete: at the source an
// update cannot follow a delete of the same key without an insert between.
//
// Primary-key changes become delete(old key) + upsert/update(new key), see
// Applier.moveRow; Truncate is a barrier (Applier.truncate).
//
// Keys are compared by their binary encoding. For the rare types whose equal
// values have several encodings (numeric scale, nondeterministic collations)
// two entries may then name one destination row; flushes run deletes before
// upserts before updates, which orders such pairs correctly in the cases a
// source can produce (at any point at most one of the spellings is live).

// opKind is the operation an entry stands for.
type opKind uint8

const (
	opUpsert opKind = iota + 1
	opUpdate
	opDelete
)

// entry is the folded operation for one key of one table.
type entry struct {
	op opKind
	// deleted is, for opUpsert and opUpdate of a soft-delete table, the value
	// written to the soft-delete column.
	deleted bool
	// fresh records that the window's first change of the key was an
	// insert (or the arrival of a moved row): the key did not exist at the
	// source then, so the destination most likely lacks it too. It only
	// picks the faster way to apply an upsert (see flush), never the result.
	fresh bool
	// vals is the row in schema column order: for opDelete only the key
	// columns are meaningful.
	vals []connectors.Value
}

// set makes e the operation op with vals, keeping what is known about the
// key (fresh).
func (e *entry) set(op opKind, vals []connectors.Value) {
	*e = entry{op: op, vals: vals, fresh: e.fresh}
}

// reducer folds one table's changes of the current window.
type reducer struct {
	keyIdx []int
	soft   bool
	index  map[string]int32
	// entries in order of first appearance (deterministic flushes).
	entries []entry
	keyBuf  []byte
}

func newReducer(keyIdx []int, soft bool) reducer {
	return reducer{keyIdx: keyIdx, soft: soft, index: make(map[string]int32)}
}

func (r *reducer) empty() bool { return len(r.entries) == 0 }

// hasFresh reports whether an entry may take a fast path for fresh keys.
func (r *reducer) hasFresh() bool {
	for i := range r.entries {
		if e := &r.entries[i]; e.op == opUpsert && e.fresh {
			return true
		}
	}
	return false
}

func (r *reducer) reset() {
	clear(r.index)
	clear(r.entries) // drop references to the batch's values
	r.entries = r.entries[:0]
}

// key encodes the key columns of vals (all Binary: callers check) into a
// buffer that is valid until the next call.
func (r *reducer) key(vals []connectors.Value) []byte {
	b := r.keyBuf[:0]
	for _, i := range r.keyIdx {
		b = binary.BigEndian.AppendUint32(b, uint32(len(vals[i].Data)))
		b = append(b, vals[i].Data...)
	}
	r.keyBuf = b
	return b
}

// peek returns the pending entry of key, or nil.
func (r *reducer) peek(key []byte) *entry {
	if i, ok := r.index[string(key)]; ok {
		return &r.entries[i]
	}
	return nil
}

// add starts the entry of a key the window has not seen.
func (r *reducer) add(key []byte, e entry) {
	r.index[string(key)] = int32(len(r.entries))
	r.entries = append(r.entries, e)
}

// upsert folds an upsert of row v; fresh tells that the change is an
// insert or a moved row's arrival. It returns false, changing nothing, when
// the fold needs a barrier (see the table above); after a flush it always
// succeeds.
func (r *reducer) upsert(key []byte, v []connectors.Value, fresh bool) bool {
	p := r.peek(key)
	switch {
	case p == nil:
		r.add(key, entry{op: opUpsert, vals: v, fresh: fresh})
	case !hasUnchanged(v):
		p.set(opUpsert, v)
	case p.op == opUpsert:
		p.set(opUpsert, merge(p.vals, v))
	case p.op == opUpdate:
		return false
	case p.op == opDelete && r.soft:
		p.set(opUpsert, v)
	default: // hard delete: the row is absent, so Unchanged means NULL.
		p.set(opUpsert, unchangedToNull(v))
	}
	return true
}

// update folds an update of the known columns of v (v has Unchanged ones).
func (r *reducer) update(key []byte, v []connectors.Value) {
	p := r.peek(key)
	switch {
	case p == nil:
		r.add(key, entry{op: opUpdate, vals: v})
	case p.op == opUpsert:
		p.set(opUpsert, merge(p.vals, v))
	case p.op == opUpdate:
		p.set(opUpdate, merge(p.vals, v))
	case p.op == opDelete && r.soft:
		p.set(opUpdate, v)
	default: // update of a row deleted in this window: nothing to update.
	}
}

// remove folds a delete; keyVals has the key columns set.
func (r *reducer) remove(key []byte, keyVals []connectors.Value) {
	p := r.peek(key)
	switch {
	case p == nil:
		r.add(key, entry{op: opDelete, vals: keyVals})
	case !r.soft:
		p.set(opDelete, keyVals)
	case p.op == opUpsert || p.op == opUpdate:
		p.deleted = true
	}
}

func hasUnchanged(v []connectors.Value) bool {
	for i := range v {
		if v[i].Kind == connectors.Unchanged {
			return true
		}
	}
	return false
}

// merge returns v with its Unchanged columns taken from w (w<-v).
func merge(w, v []connectors.Value) []connectors.Value {
	out := make([]connectors.Value, len(v))
	for i := range v {
		if v[i].Kind == connectors.Unchanged {
			out[i] = w[i]
		} else {
			out[i] = v[i]
		}
	}
	return out
}

func unchangedToNull(v []connectors.Value) []connectors.Value {
	out := make([]connectors.Value, len(v))
	for i := range v {
		if v[i].Kind == connectors.Unchanged {
			out[i] = connectors.Value{Kind: connectors.Null}
		} else {
			out[i] = v[i]
		}
	}
	return out
}
