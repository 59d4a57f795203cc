package postgres

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

// The fold is checked against its reference semantics in memory: random
// operation sequences on one key, from every kind of starting row, applied
// one by one versus folded into an entry (flushing at barriers) and applied
// as a flush would.

// memRow is a destination row in the in-memory model; nil means absent.
type memRow struct {
	vals    []string // "" is NULL
	deleted bool
}

type memOp struct {
	kind byte // 'u' upsert, 'p' partial update, 'd' delete
	vals []connectors.Value
}

const memWidth = 3 // column 0 is the key

func (o memOp) String() string {
	s := string(o.kind)
	for _, v := range o.vals {
		switch v.Kind {
		case connectors.Unchanged:
			s += " ?"
		case connectors.Null:
			s += " null"
		default:
			s += " " + string(v.Data)
		}
	}
	return s
}

// setKnown writes the known columns of v into r (creating it if nil).
func setKnown(r *memRow, v []connectors.Value) *memRow {
	if r == nil {
		r = &memRow{vals: make([]string, memWidth)}
	} else {
		r = &memRow{vals: slices.Clone(r.vals), deleted: r.deleted}
	}
	for i, x := range v {
		switch x.Kind {
		case connectors.Binary:
			r.vals[i] = string(x.Data)
		case connectors.Null:
			r.vals[i] = ""
		}
	}
	return r
}

// refApply is the reference: one change on its own.
func refApply(r *memRow, op memOp, soft bool) *memRow {
	switch op.kind {
	case 'u':
		r = setKnown(r, op.vals)
		r.deleted = false
	case 'p':
		if r != nil {
			r = setKnown(r, op.vals)
			r.deleted = false
		}
	case 'd':
		if !soft {
			return nil
		}
		if r != nil {
			r = &memRow{vals: r.vals, deleted: true}
		}
	}
	return r
}

// entryApply is what a flush does with an entry.
func entryApply(r *memRow, e *entry, soft bool) *memRow {
	switch e.op {
	case opUpsert:
		r = setKnown(r, e.vals)
		r.deleted = e.deleted
	case opUpdate:
		if r != nil {
			r = setKnown(r, e.vals)
			r.deleted = e.deleted
		}
	case opDelete:
		if !soft {
			return nil
		}
		if r != nil && !r.deleted {
			r = &memRow{vals: r.vals, deleted: true}
		}
	}
	return r
}

func randOp(rng *rand.Rand, serial *int) memOp {
	v := make([]connectors.Value, memWidth)
	v[0] = connectors.Value{Kind: connectors.Binary, Data: []byte("k")}
	kind := []byte{'u', 'u', 'p', 'd'}[rng.IntN(4)]
	for i := 1; i < memWidth; i++ {
		*serial++
		switch {
		case kind == 'p' && i == 1:
			v[i].Kind = connectors.Unchanged // a partial update lacks something
		case rng.IntN(4) == 0 && kind != 'd':
			v[i].Kind = connectors.Unchanged
		case rng.IntN(5) == 0:
			v[i].Kind = connectors.Null
		default:
			v[i] = connectors.Value{Kind: connectors.Binary, Data: fmt.Appendf(nil, "v%d", *serial)}
		}
	}
	return memOp{kind: kind, vals: v}
}

func sameRow(a, b *memRow) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.deleted == b.deleted && slices.Equal(a.vals, b.vals)
}

func TestReducerMatchesReference(t *testing.T) {
	starts := map[string]*memRow{
		"absent":       nil,
		"present":      {vals: []string{"k", "s1", "s2"}},
		"soft-deleted": {vals: []string{"k", "s1", "s2"}, deleted: true},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	serial := 0
	for iter := range 20000 {
		soft := iter%2 == 1
		ops := make([]memOp, 1+rng.IntN(6))
		for i := range ops {
			ops[i] = randOp(rng, &serial)
		}
		for name, start := range starts {
			if name == "soft-deleted" && !soft {
				continue
			}
			want := start
			for _, op := range ops {
				want = refApply(want, op, soft)
			}
			got := start
			r := newReducer([]int{0}, soft)
			for _, op := range ops {
				key := r.key(op.vals)
				switch op.kind {
				case 'u':
					if !r.upsert(key, op.vals, false) {
						got = entryApply(got, &r.entries[0], soft) // barrier: flush, new window
						r.reset()
						if !r.upsert(r.key(op.vals), op.vals, false) {
							t.Fatal("upsert into an empty window needs a barrier")
						}
					}
				case 'p':
					r.update(key, op.vals)
				case 'd':
					r.remove(key, op.vals)
				}
			}
			if len(r.entries) > 1 {
				t.Fatalf("one key folded into %d entries", len(r.entries))
			}
			if len(r.entries) == 1 {
				got = entryApply(got, &r.entries[0], soft)
			}
			if !sameRow(got, want) {
				t.Fatalf("soft=%v start=%s ops=%v: folded gives %+v, reference %+v", soft, name, ops, got, want)
			}
		}
	}
}

func TestPatchArrayElemOID(t *testing.T) {
	arr := func(oid uint32) []byte {
		return []byte{0, 0, 0, 1, 0, 0, 0, 0, byte(oid >> 24), byte(oid >> 16), byte(oid >> 8), byte(oid), 0, 0, 0, 1, 0, 0, 0, 1}
	}
	for _, tc := range []struct {
		name      string
		have, dst uint32
		want      uint32
	}{
		{"user enum to user enum", 16500, 17000, 17000},
		{"domain to base type", 16500, 23, 23},
		{"same builtin", 23, 23, 23},
		{"different builtins are left to fail", 23, 20, 23},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := arr(tc.have)
			patchArrayElemOID(b, tc.dst)
			if !slices.Equal(b, arr(tc.want)) {
				t.Errorf("got % x, want % x", b, arr(tc.want))
			}
		})
	}
}
