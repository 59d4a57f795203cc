package replication

import "github.com/sluicedb/sluice/connectors"

// changeList is a list of changes kept in segments of segSize, so that a
// large batch is never copied to grow. Every segment but the last is full.
// Changes keep their index for as long as they are in the list: forget
// releases the leading segments of changes no longer needed without
// moving the others.
type changeList struct {
	segs  [][]connectors.Change
	n     int
	gone  int                   // leading segments forgotten (nil in segs)
	spare [][]connectors.Change // emptied segments, for reuse
}

const (
	segSize  = 4096
	maxSpare = 16
)

func (l *changeList) add(c connectors.Change) {
	if len(l.segs) == l.gone || len(l.segs[len(l.segs)-1]) == segSize {
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

// forget releases the changes before n that fill whole segments: the
// caller needs none of them any more. Other changes keep their index; at
// and span must not be asked for forgotten ones.
func (l *changeList) forget(n int) {
	for l.gone < len(l.segs) && (l.gone+1)*segSize <= n {
		seg := l.segs[l.gone]
		clear(seg)
		l.release(seg)
		l.segs[l.gone] = nil
		l.gone++
	}
}

// first is the index of the first change not forgotten.
func (l *changeList) first() int { return l.gone * segSize }

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
	for l.n > n && len(l.segs) > l.gone {
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
	for _, s := range l.segs[l.gone:] {
		clear(s)
		l.release(s)
	}
	clear(l.segs)
	l.segs, l.n, l.gone = l.segs[:0], 0, 0
	for _, c := range keep {
		l.add(c)
	}
}

func (l *changeList) release(seg []connectors.Change) {
	if len(l.spare) < maxSpare {
		l.spare = append(l.spare, seg[:0])
	}
}
