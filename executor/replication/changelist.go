package replication

import "github.com/sluicedb/sluice/connectors"

// changeList is a list of changes kept in segments of segSize, so that a
// large batch is never copied to grow. Every segment but the last is full.
type changeList struct {
	segs  [][]connectors.Change
	n     int
	spare [][]connectors.Change // emptied segments, for reuse
}

const (
	segSize  = 4096
	maxSpare = 16
)

func (l *changeList) add(c connectors.Change) {
	if len(l.segs) == 0 || len(l.segs[len(l.segs)-1]) == segSize {
		var seg []connectors.Change
		if k := len(l.spare); k > 0 {
			seg, l.spare = l.spare[k-1], l.spare[:k-1]
		} else {
			seg = make([]connectors.Change, 0, segSize)
		}
		l.segs = append(l.segs, seg)
	}
	last := &l.segs[len(l.segs)-1]
	*last = append(*last, c)
	l.n++
}

// at returns change i.
func (l *changeList) at(i int) *connectors.Change { return &l.segs[i/segSize][i%segSize] }

// span returns changes [from, to) as slices of the segments.
func (l *changeList) span(from, to int) [][]connectors.Change {
	var out [][]connectors.Change
	for from < to {
		seg := l.segs[from/segSize]
		end := min(len(seg), to-from/segSize*segSize)
		out = append(out, seg[from%segSize:end])
		from += end - from%segSize
	}
	return out
}

// truncate drops the changes from n on.
func (l *changeList) truncate(n int) {
	for l.n > n {
		last := &l.segs[len(l.segs)-1]
		k := min(len(*last), l.n-n)
		clear((*last)[len(*last)-k:])
		*last = (*last)[:len(*last)-k]
		l.n -= k
		if len(*last) == 0 {
			l.release(*last)
			l.segs = l.segs[:len(l.segs)-1]
		}
	}
}

// drop drops the changes before n, moving the others to the front.
func (l *changeList) drop(n int) {
	var keep []connectors.Change
	for _, s := range l.span(n, l.n) {
		keep = append(keep, s...)
	}
	for _, s := range l.segs {
		clear(s)
		l.release(s)
	}
	clear(l.segs)
	l.segs, l.n = l.segs[:0], 0
	for _, c := range keep {
		l.add(c)
	}
}

func (l *changeList) release(seg []connectors.Change) {
	if len(l.spare) < maxSpare {
		l.spare = append(l.spare, seg[:0])
	}
}
