package replication

import (
	"fmt"
	"testing"

	"github.com/sluicedb/sluice/connectors"
)

func TestChangeList(t *testing.T) {
	mk := func(i int) connectors.Change {
		return connectors.Change{Kind: connectors.Insert, Table: connectors.TableName{Name: fmt.Sprint(i)}}
	}
	var l changeList
	check := func(from int, what string) {
		t.Helper()
		i := from
		for _, s := range l.span(0, l.n) {
			for _, c := range s {
				if c.Table.Name != fmt.Sprint(i) {
					t.Fatalf("%s: change %d is %s", what, i-from, c.Table.Name)
				}
				i++
			}
		}
		if i-from != l.n {
			t.Fatalf("%s: span has %d changes, list %d", what, i-from, l.n)
		}
		for j := range l.n {
			if got := l.at(j).Table.Name; got != fmt.Sprint(from+j) {
				t.Fatalf("%s: at(%d) = %s", what, j, got)
			}
		}
	}
	n := 3*segSize + 17
	for i := range n {
		l.add(mk(i))
	}
	check(0, "filled")
	for _, r := range [][2]int{{0, 0}, {0, 1}, {5, segSize}, {segSize - 1, segSize + 1}, {10, 2*segSize + 3}, {0, n}} {
		got := 0
		for _, s := range l.span(r[0], r[1]) {
			if len(s) == 0 {
				t.Errorf("span %v has an empty slice", r)
			}
			if got == 0 && len(s) > 0 && s[0].Table.Name != fmt.Sprint(r[0]) {
				t.Errorf("span %v starts at %s", r, s[0].Table.Name)
			}
			got += len(s)
		}
		if got != r[1]-r[0] {
			t.Errorf("span %v has %d changes", r, got)
		}
	}
	l.truncate(2*segSize + 5)
	check(0, "truncated")
	l.truncate(segSize)
	check(0, "truncated to a segment")
	for i := segSize; i < n; i++ {
		l.add(mk(i))
	}
	check(0, "refilled")
	l.drop(segSize + 3)
	check(segSize+3, "dropped")
	if len(l.spare) == 0 {
		t.Error("no segments kept for reuse")
	}
	for _, s := range l.spare {
		for _, c := range s[:cap(s)] {
			if c.Table.Name != "" {
				t.Fatal("a spare segment holds a change")
			}
		}
	}
	l.drop(l.n)
	if l.n != 0 || len(l.span(0, 0)) != 0 {
		t.Errorf("after dropping everything: %d changes", l.n)
	}
}
